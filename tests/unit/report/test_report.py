"""report.html from a fake run directory: self-contained, complete, and robust to missing inputs."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch

from labelless.report import RetrievalExamples, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CSV = """epoch,step,train/loss,train/lr,monitor/knn_top1,monitor/rankme
0,0,5.25,0.001,,
0,1,4.75,0.002,,
0,1,,,0.31,12.5
1,2,4.5,0.003,,
1,3,4.125,0.004,,
1,3,,,0.45,20.25
"""
METRICS = {
    "knn_top1": 0.8731,
    "rankme": 45.25,
    "method": "simclr",
    "linear": {"accuracy": 0.9012, "protocol": {"weight_decays": [0.0, 1e-4], "epochs": 100}},
}


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text(CSV)
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    (tmp_path / "config.yaml").write_text("method: simclr\nnote: <script>alert(1)</script>\n")
    return tmp_path


def three_blobs():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(30)
    centers = torch.randn(3, 16, generator=generator) * 4
    return centers[labels] + torch.randn(90, 16, generator=generator), labels


def retrieval_examples(labels: torch.Tensor) -> RetrievalExamples:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 3, 8, 8), dtype=np.uint8)
    query_labels = np.array([0, 1, 2])
    return RetrievalExamples(images[:, 0], query_labels, images, np.array([[0, 1, 2, 0]] * 3))


def test_full_report_is_self_contained(run_dir):
    embeddings, labels = three_blobs()
    predictions = labels.clone()
    predictions[:5] = 1  # five class-0 samples predicted as class 1
    (run_dir / "prune.json").write_text(json.dumps({"knee": {"knn_top1": 0.5}}))
    (run_dir / "finetune.json").write_text(json.dumps({"finetune_top1": 0.75}))
    path = write_report(
        run_dir,
        embeddings=embeddings,
        labels=labels,
        class_names=["a", "b", "c"],
        predictions=predictions,
        retrieval=retrieval_examples(labels),
        map_method="pca",
    )
    html = path.read_text()

    assert path == run_dir / "report.html"
    for value in ("0.8731", "45.25", "0.9012", "simclr", "linear.accuracy", "weight_decays"):
        assert value in html
    assert "not recorded" not in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "&lt;script&gt;" in html  # config text is escaped
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # train/loss, train/lr, two monitors, the embedding map, per-class, confusion, retrieval
    assert len(images) == 8
    assert '<td class="value">0.8333</td>' in html  # class a: 25 of 30 right
    assert "finetune_top1" in html and "knn_top1&quot;: 0.5" in html
    assert all(base64.b64decode(image).startswith(PNG_MAGIC) for image in images)

    pngs = sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    assert pngs == [
        "confusion.png",
        "embedding_map.png",
        "monitor_knn_top1.png",
        "monitor_rankme.png",
        "per_class.png",
        "retrieval.png",
        "train_loss.png",
        "train_lr.png",
    ]
    assert all((run_dir / "figures" / n).read_bytes().startswith(PNG_MAGIC) for n in pngs)
    assert not list(run_dir.rglob("*.tmp"))


def test_embedding_map_is_pca_and_is_reused(run_dir):
    embeddings, labels = three_blobs()
    names = ["a", "b", "c"]
    write_report(
        run_dir, embeddings=embeddings.numpy(), labels=labels, class_names=names, map_method="pca"
    )
    with np.load(run_dir / "figures" / "embedding_map.npz") as saved:
        coordinates, saved_labels = saved["coordinates"], saved["labels"]
        assert saved["class_names"].tolist() == ["a", "b", "c"]
    assert coordinates.shape == (90, 2)
    np.testing.assert_array_equal(saved_labels, labels.numpy())
    centred = embeddings.double().numpy() - embeddings.double().numpy().mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(coordinates), np.abs(centred @ axes[:2].T), atol=1e-3)

    (run_dir / "figures" / "embedding_map.png").unlink()
    html = write_report(run_dir).read_text()  # no embeddings: the saved map is reused
    assert "90 test embeddings, PCA to 2-D" in html
    assert (run_dir / "figures" / "embedding_map.png").read_bytes().startswith(PNG_MAGIC)


def test_report_with_only_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"knn_top1": 0.5}))
    html = write_report(tmp_path).read_text()
    assert "0.5" in html
    # curves, embedding map, per-class, retrieval, fine-tuning/pruning, config
    assert html.count("not recorded") == 6
    assert "data:image/png" not in html


def test_report_of_empty_or_broken_run(tmp_path):
    (tmp_path / "metrics.json").write_text("{not json")
    html = write_report(tmp_path).read_text()
    assert html.count("not recorded") == 7


def test_small_maps_are_tsne_and_the_method_is_reused(run_dir):
    from labelless.report import plots

    embeddings, labels = three_blobs()
    write_report(run_dir, embeddings=embeddings, labels=labels)
    expected = "umap" if plots.choose_map_method(90) == "umap" else "tsne"
    with np.load(run_dir / "figures" / "embedding_map.npz") as saved:
        assert str(saved["method"]) == expected
        coordinates = saved["coordinates"]
    # the three blobs stay apart: every point is nearer its own blob's centre than another's
    centres = np.stack([coordinates[labels.numpy() == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(coordinates[:, None] - centres[None], axis=2).argmin(1)
    assert (nearest == labels.numpy()).mean() == 1.0
    html = write_report(run_dir).read_text()
    assert ("t-SNE to 2-D" if expected == "tsne" else "UMAP to 2-D") in html
    assert plots.choose_map_method(plots.TSNE_MAX_POINTS + 1) in ("pca", "umap")


def test_confusion_matrix_counts():
    from labelless.report.plots import confusion_matrix

    matrix = confusion_matrix(np.array([0, 0, 1, 2, -1]), np.array([0, 1, 1, 0, 2]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 0]])


def test_semi_supervised_curves_are_read_per_step_and_per_epoch(tmp_path):
    from labelless.report.plots import read_curves

    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,step,train/loss,semi/mask_ratio,semi/pseudo_acc,saa/naive_fraction\n"
        "0,0,2.0,0.25,0.5,\n"
        "0,1,1.5,0.5,0.75,\n"
        "0,1,,,,0.125\n"
    )
    curves = {c.name: c for c in read_curves(path)}
    assert list(curves) == [
        "train/loss",
        "semi/mask_ratio",
        "semi/pseudo_acc",
        "saa/naive_fraction",
    ]
    assert curves["semi/mask_ratio"].x_label == "step"
    assert curves["semi/mask_ratio"].y.tolist() == [0.25, 0.5]
    assert curves["saa/naive_fraction"].x_label == "epoch"
    assert curves["saa/naive_fraction"].y.tolist() == [0.125]
