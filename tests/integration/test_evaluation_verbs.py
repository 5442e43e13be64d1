"""The evaluation suite's verbs on tiny run directories (random-init encoders on digits, no
pretraining): evaluate any encoder, compare, report, prune, fine-tune."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labelless import api
from labelless.atomic import write_text_atomic
from labelless.backbones import create_backbone, load_encoder, save_encoder
from labelless.config import build_config, dump_yaml
from labelless.errors import CheckpointError, ConfigError
from labelless.verbs.pretrain import final_metrics

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def make_run(
    directory: Path, digits, *, seed: int = 0, knn_k: int = 20, width: float = 0.125
) -> Path:
    """A finished-looking run directory: config, exported encoder and final metrics."""
    torch.manual_seed(seed)
    train, test = digits.train, digits.test
    encoder = create_backbone(
        "resnet18_cifar",
        in_channels=1,
        width=width,
        input_size=8,
        mean=train.meta["mean"],
        std=train.meta["std"],
    )
    config = build_config(
        {
            "data": {"name": "digits"},
            "backbone": {"name": "resnet18_cifar", "width": width},
            "monitor": {"knn_k": knn_k},
            "seed": seed,
            "out": str(directory),
        },
        "test",
    )
    directory.mkdir(parents=True)
    write_text_atomic(directory / "config.yaml", dump_yaml(config))
    save_encoder(encoder, directory)
    metrics, _ = final_metrics(config, encoder, train, test)
    write_text_atomic(directory / "metrics.json", json.dumps(metrics, default=float))
    return directory


@pytest.fixture
def run(tmp_path, digits) -> Path:
    return make_run(tmp_path / "run", digits)


def test_evaluate_a_run_directory_merges_into_its_metrics(run):
    before = json.loads((run / "metrics.json").read_text())
    metrics = api.evaluate(run, "digits", k=20)
    after = json.loads((run / "metrics.json").read_text())
    assert after["knn_top1"] == before["knn_top1"]  # the run's own final metrics are kept
    recorded = after["evaluations"]["digits [native]"]
    assert recorded["knn_top1"] == pytest.approx(metrics["knn_top1"])
    preprocessing = recorded["protocol"]["preprocessing"]
    assert preprocessing["input_size"] == 8 and preprocessing["normalize"] == "encoder"
    assert not preprocessing["input_size_overridden"] and not preprocessing["normalize_overridden"]
    assert recorded["protocol"]["knn"]["k"] == 20 and recorded["encoder"]["kind"] == "run"
    # the same encoder, same protocol: the same kNN accuracy as the pretraining run reported
    assert recorded["knn_top1"] == pytest.approx(before["knn_top1"], abs=1e-6)
    assert not list(run.glob(".*.tmp"))


def test_knn_backend_is_recorded_and_an_ivf_search_is_a_protocol_setting(run, monkeypatch):
    """``knn_backend``: the search is recorded under ``protocol.knn.search``; faiss's IVF index
    (forced here from 100 train rows) adds its recall@k against the exact search and the setting
    ``approximate``, which compare checks (the search record itself is not compared); asking
    for faiss without it installed fails before anything is embedded or written."""
    from labelless.evaluate import neighbours
    from labelless.evaluate.catalog import metric_info
    from labelless.report.compare import protocol_signature

    exact = api.evaluate(run, "digits", k=20, knn_backend="torch")
    assert exact["protocol"]["knn"]["search"] == {"backend": "torch", "index": "exact"}
    assert "approximate" not in exact["protocol"]["knn"]
    pytest.importorskip("faiss", reason="faiss is optional: pip install 'labelless[faiss]'")
    ivf = api.evaluate(run, "digits", k=20, knn_backend="faiss", knn_ivf_rows=100, knn_nprobe=8)
    search = ivf["protocol"]["knn"]["search"]
    assert search["backend"] == "faiss" and search["index"] == "ivf" and search["nprobe"] == 8
    assert search["nlist"] == 36 and search["recall_queries"] == 360  # every digits test image
    assert 0.8 <= search["recall_at_k"] <= 1.0
    assert abs(ivf["knn_top1"] - exact["knn_top1"]) <= 0.05
    assert ivf["protocol"]["knn"]["approximate"] == {"index": "faiss ivf", "nprobe": 8}
    info = metric_info("knn_top1")
    signature = protocol_signature("digits", ivf, info)["knn"]
    assert "search" not in signature and signature["approximate"]["nprobe"] == 8
    flat = api.evaluate(run, "digits", k=20, knn_backend="faiss")
    assert flat["knn_top1"] == exact["knn_top1"]
    assert protocol_signature("d", flat, info) == protocol_signature("d", exact, info)

    monkeypatch.setattr(neighbours, "load_faiss", lambda: None)
    before = (run / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match=r"pip install 'labelless\[faiss\]'"):
        api.evaluate(run, "digits", knn_backend="faiss")
    assert (run / "metrics.json").read_bytes() == before


def test_evaluate_an_encoder_file_with_overridden_preprocessing(run, tmp_path):
    weights = run / "encoder.safetensors"
    with pytest.raises(ConfigError, match="--out"):
        api.evaluate(weights, "digits")
    out = tmp_path / "eval"
    metrics = api.evaluate(weights, "digits", input_size=16, normalize="imagenet", out=out, k=20)
    record = json.loads((out / "metrics.json").read_text())
    assert list(record["evaluations"]) == ["digits [16px+imagenet-norm]"]
    assert record["encoder"]["kind"] == "encoder" and len(record["encoder"]["weights_sha256"]) == 64
    preprocessing = metrics["protocol"]["preprocessing"]
    assert preprocessing["input_size"] == 16 and preprocessing["input_size_overridden"]
    # ImageNet's RGB statistics averaged for the one-channel encoder
    assert preprocessing["mean"] == [pytest.approx((0.485 + 0.456 + 0.406) / 3, abs=1e-6)]
    assert preprocessing["normalize"] == "imagenet" and preprocessing["normalize_overridden"]
    with pytest.raises(CheckpointError, match="does not exist"):
        api.evaluate(tmp_path / "missing.safetensors", "digits", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="unknown --normalize"):
        api.evaluate(weights, "digits", normalize="imagenett", out=tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_without_k_evaluate_and_prune_use_the_k_of_the_encoders_run(tmp_path, digits):
    """One encoder, one kNN number: ``evaluate`` / ``prune`` without k score with the k its run
    used (config.yaml), the same number as the run's own metrics; an encoder without a run
    gets its modality's k."""
    from labelless.config import KNN_K
    from labelless.modalities import MODALITIES

    run = make_run(tmp_path / "run", digits, knn_k=7)
    before = json.loads((run / "metrics.json").read_text())
    metrics = api.evaluate(run, "digits")
    assert metrics["protocol"]["knn"]["k"] == 7 == before["protocol"]["knn"]["k"]
    assert metrics["knn_top1"] == pytest.approx(before["knn_top1"])
    inside = api.evaluate(run / "encoder.safetensors", "digits", out=tmp_path / "file")
    assert inside["protocol"]["knn"]["k"] == 7  # an encoder file of a run: the run's k too
    assert api.prune(run, "0.5", linear=False)["protocol"]["knn"]["k"] == 7

    alone = tmp_path / "alone"
    save_encoder(load_encoder(run), alone)
    metrics = api.evaluate(alone / "encoder.safetensors", "digits", out=tmp_path / "eval")
    assert metrics["protocol"]["knn"]["k"] == KNN_K == MODALITIES["image"].knn_k
    assert {modality.knn_k for modality in MODALITIES.values()} == {KNN_K}
    assert api.evaluate(run, "digits", k=3)["protocol"]["knn"]["k"] == 3  # a given k wins


def test_timm_encoder_from_a_local_file_uses_its_pretrained_config(tmp_path, digits):
    import timm
    from safetensors.torch import save_file

    from labelless.encoders import load_any_encoder, resolve_preprocessing

    model = timm.create_model("test_resnet", pretrained=False, num_classes=0, in_chans=1)
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    with pytest.raises(ConfigError, match="--weights"):
        load_any_encoder("timm:test_resnet", in_channels=1)
    encoder, source = load_any_encoder("timm:test_resnet", weights=weights, in_channels=1)
    assert source["kind"] == "timm" and source["weights"] == str(weights.resolve())
    native = resolve_preprocessing(encoder.meta)
    config = model.pretrained_cfg
    assert native.input_size == config["input_size"][-1] and native.mean == [config["mean"][0]]
    metrics = api.evaluate(
        "timm:test_resnet", "digits", weights=weights, input_size=16, out=tmp_path / "e", k=20
    )
    assert metrics["protocol"]["preprocessing"]["input_size_overridden"]
    assert metrics["knn_top1"] > 0.3  # random features of digits, well above chance (0.1)


def test_compare_ranks_runs_and_flags_a_protocol_mismatch(tmp_path, digits):
    first = make_run(tmp_path / "first", digits, seed=0, knn_k=20)
    second = make_run(tmp_path / "second", digits, seed=1, knn_k=50)
    page = api.compare([first, second], tmp_path / "compare.html")
    html = page.read_text()
    scores = {
        name: json.loads((path / "metrics.json").read_text())["knn_top1"]
        for name, path in (("first", first), ("second", second))
    }
    best, worst = sorted(scores, key=scores.get, reverse=True)
    table = html[html.index('<table class="sortable"') :]
    assert table.index(f">{best}</td>") < table.index(f">{worst}</td>")
    assert "Protocols differ" in html and "knn.k: 50 here vs 20" in html  # first is the reference
    assert "<script" in html and "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") >= 3  # knn, linear and rankme bar charts
    # the same protocol (k) for both: no flag on the kNN column
    api.evaluate(first, "digits", k=20)
    api.evaluate(second, "digits", k=20)
    html = api.compare([first, second], tmp_path / "compare.html").read_text()
    section = html[html.index("<h2>digits [native]</h2>") :]
    assert "Protocols differ" not in section
    with pytest.raises(ConfigError, match=r"no metrics\.json"):
        api.compare([first, tmp_path], tmp_path / "never.html")
    assert not (tmp_path / "never.html").exists()


def test_report_rebuild_from_the_run_directory(run):
    path = api.report(run)
    html = path.read_text()
    for section in ("Per-class accuracy", "Nearest-neighbour retrieval", "Embedding map"):
        assert f"<h2>{section}</h2>" in html
    assert "t-SNE to 2-D" in html  # 360 test embeddings: small enough for t-SNE
    for name in ("confusion.png", "per_class.png", "retrieval.png", "embedding_map.png"):
        assert (run / "figures" / name).is_file(), name
    assert html.count("not recorded") == 2  # no training curves and no prune/finetune results
    assert "<script" not in html and "https://" not in html
    with pytest.raises(ConfigError, match="not a run directory"):
        api.report(run / "figures")


def test_prune_reaches_each_requested_sparsity(run):
    from labelless.backbones import load_encoder
    from labelless.prune import prunable_weights

    record = api.prune(run, "0.8,0.3,0.5", linear=False, k=20)
    levels = [row["sparsity"] for row in record["levels"]]
    assert levels == [0.0, 0.3, 0.5, 0.8]
    total = sum(w.numel() for _, w in prunable_weights(load_encoder(run)))
    for row in record["levels"]:
        assert abs(row["measured_sparsity"] - row["sparsity"]) <= 1.0 / total + 1e-6
    saved = json.loads((run / "prune.json").read_text())
    assert saved["knee"]["knn_top1"] in (*levels, None)
    assert "within 0.01" in saved["knee_definition"]
    assert (run / "figures" / "prune.png").is_file()
    assert "prune.json" in (run / "report.html").read_text()
    with pytest.raises(ConfigError, match="fractions in"):
        api.prune(run, "0.5,1.5")


def test_finetune_writes_its_protocol_with_a_validation_split(run):
    result = api.finetune(run, epochs=3, batch_size=64, lr=3e-3)
    saved = json.loads((run / "finetune.json").read_text())
    assert saved["finetune_top1"] == pytest.approx(result["finetune_top1"])
    protocol = saved["protocol"]
    assert protocol["validation_split"]["carved_from"] == "train"
    assert protocol["validation_split"]["samples"] > 0 and protocol["test_split"] == "digits/test"
    assert protocol["encoder_lr"] < protocol["head_lr"] and protocol["optimizer"] == "adamw"
    assert 1 <= saved["best_epoch"] <= 3 and len(saved["curve"]) == 3
    assert "frozen_linear_top1" in saved
    # three epochs from a random init: far above chance (0.1) on digits
    assert saved["finetune_top1"] > 0.5, saved


def test_magnitude_pruning_and_knee_on_hand_made_values():
    from torch import nn

    from labelless.prune import essential_sparsity, global_magnitude_prune, weight_sparsity

    model = nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, -4.0], [0.5, 6.0, -7.0, 8.0]]))
    pruned = global_magnitude_prune(model, 0.5)
    expected = torch.tensor([[0.0, 0.0, 0.0, -4.0], [0.0, 6.0, -7.0, 8.0]])
    assert torch.equal(pruned[0].weight, expected) and weight_sparsity(pruned) == 0.5
    assert torch.equal(model[0].weight[0], torch.tensor([1.0, -2.0, 3.0, -4.0]))  # a copy
    assert torch.equal(pruned[0].bias, model[0].bias)  # biases are not pruned
    sparsities = [0.0, 0.2, 0.4, 0.6, 0.8]
    assert essential_sparsity(sparsities, [0.9, 0.895, 0.891, 0.85, 0.3], 0.9) == 0.4
    assert essential_sparsity(sparsities, [0.9, 0.5, 0.9, 0.9, 0.9], 0.9) == 0.0
    assert essential_sparsity([0.5], [0.2], 0.9) is None


def test_select_ranks_runs_by_rankme(tmp_path, digits):
    first = make_run(tmp_path / "a", digits, seed=0)
    second = make_run(tmp_path / "b", digits, seed=1)
    rows = api.select([first, second], "digits", max_samples=300)
    assert [row["rank"] for row in rows] == [1, 2]
    assert rows[0]["value"] >= rows[1]["value"]
    assert np.isfinite(rows[0]["value"])


def test_select_refuses_encoders_of_different_sizes_unless_allowed(tmp_path, digits):
    """RankMe grows with the embedding size: a 64-d and a 32-d encoder are not ranked together
    without --allow-mixed, and the rows say what the measure can compare."""
    wide = make_run(tmp_path / "wide", digits, width=0.125)
    narrow = make_run(tmp_path / "narrow", digits, width=0.0625)
    with pytest.raises(ConfigError) as error:
        api.select([wide, narrow], "digits", max_samples=300)
    message = str(error.value)
    assert "64-d" in message and "32-d" in message and "--allow-mixed" in message
    assert "Garrido et al. 2023" in message
    with pytest.warns(UserWarning, match="allow-mixed"):
        rows = api.select([wide, narrow], "digits", max_samples=300, allow_mixed=True)
    assert {row["run"] for row in rows} == {str(wide), str(narrow)}
    assert all("cannot compare" in row["scope"] for row in rows)
    same = api.select([wide, make_run(tmp_path / "b", digits, seed=1)], "digits", max_samples=300)
    assert "one encoder architecture" in same[0]["scope"]
