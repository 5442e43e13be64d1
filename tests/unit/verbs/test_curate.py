"""``labelless curate`` end to end on digits, ``pretrain --subset`` reading what it wrote, and
the inputs it refuses (exit 2, one line that names the fix)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from labelless.cli import main
from labelless.data import load_dataset


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """A small CNN for digits' 8x8 grey images, built through the API (untrained: the tests
    check what curate does with any encoder's embeddings, not how good they are)."""
    from labelless.backbones import create_backbone, save_encoder

    torch.manual_seed(0)
    pool = load_dataset("digits").train
    backbone = create_backbone(
        "small_cnn", in_channels=1, input_size=8, mean=pool.meta["mean"], std=pool.meta["std"]
    )
    return save_encoder(backbone, tmp_path_factory.mktemp("encoder"))


def _subset_rows(path: Path) -> np.ndarray:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return np.asarray([int(line.split("\t")[0]) for line in lines])


def test_curate_writes_subset_record_and_page(encoder, tmp_path, capsys):
    out = tmp_path / "curated"
    argv = ["curate", "digits", "--encoder", str(encoder), "--keep", "0.3", "--clusters", "10"]
    assert main([*argv, "--dedup", "--dedup-threshold", "0.999", "--out", str(out)]) == 0
    pool = load_dataset("digits").train
    rows = _subset_rows(out / "subset.txt")
    record = json.loads((out / "curate.json").read_text())
    assert len(rows) == record["kept_size"] == round(0.3 * len(pool)) == 431
    assert (np.diff(rows) > 0).all() and rows.max() < len(pool)
    weights = (encoder / "encoder.safetensors").read_bytes()
    assert record["encoder"]["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert record["parameters"] == {
        "keep": 0.3, "strategy": "balanced", "dedup": True, "dedup_threshold": 0.999,
        "clusters": 10, "seed": 0,
    }  # fmt: skip
    diversity = record["diversity"]
    assert diversity["clusters_after"]["entropy"] > diversity["clusters_before"]["entropy"]
    assert sum(diversity["clusters_after"]["counts"]) == 431
    assert diversity["vendi_before"] >= 1 and record["duplicates"]["search"]["index"] == "exact"
    page = (out / "curate.html").read_text()
    groups = record["duplicates"]["groups"]  # a grid of groups when there are any
    assert page.count("data:image/png;base64") == 2 + (groups > 0)  # + clusters, dropped
    assert "Samples per cluster" in page and "Dropped samples" in page
    assert "kept 431 of 1437 samples" in capsys.readouterr().out
    # the same command again replaces its own output (and is reproducible)
    assert main([*argv, "--dedup", "--dedup-threshold", "0.999", "--out", str(out)]) == 0
    assert np.array_equal(_subset_rows(out / "subset.txt"), rows)


@pytest.mark.parametrize("strategy", ["kcenter", "typical", "dedup", "sas"])
def test_each_strategy_keeps_the_asked_share(encoder, tmp_path, strategy):
    out = tmp_path / strategy
    argv = ["curate", "digits", "--encoder", str(encoder), "--keep", "0.1", "--clusters", "5"]
    assert main([*argv, "--strategy", strategy, "--dedup-threshold", "1.0", "--out", str(out)]) == 0
    assert len(_subset_rows(out / "subset.txt")) == 144


def test_simcore_samples_towards_the_target(encoder, tmp_path):
    out = tmp_path / "simcore"
    argv = ["curate", "digits", "--encoder", str(encoder), "--keep", "0.05"]
    assert main([*argv, "--strategy", "simcore", "--target", "digits", "--out", str(out)]) == 0
    record = json.loads((out / "curate.json").read_text())
    assert record["kept_size"] == 72 and record["parameters"]["centroids"] == 100


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--keep", "1.5"], "--keep is the fraction of the pool to keep, in (0, 1]"),
        (["--keep", "0"], "--keep is the fraction of the pool to keep, in (0, 1]"),
        (["--keep", "0.3", "--strategy", "nope"], "unknown curation strategy 'nope'"),
        (["--keep", "0.3", "--strategy", "simcore"], "needs --target DATA"),
        (["--keep", "0.3", "--dedup-threshold", "2"], "threshold is a cosine similarity"),
    ],
)
def test_bad_settings_exit_2(encoder, tmp_path, capsys, extra, message):
    argv = ["curate", "digits", "--encoder", str(encoder), "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_data_encoder_and_out_exit_2(encoder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    common = ["--encoder", str(encoder), "--keep", "0.3"]
    assert main(["curate", str(empty), *common, "--out", str(tmp_path / "a")]) == 2
    assert "no image files" in capsys.readouterr().err
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n" + "\n".join(f"{i},{i % 3}" for i in range(20)) + "\n")
    assert main(["curate", str(rows), *common, "--out", str(tmp_path / "b")]) == 2
    assert "the encoder takes image data" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["curate", "digits", *common, "--out", str(foreign)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_subset_file_errors(tmp_path):
    from labelless.data.subsets import apply_subset, write_subset
    from labelless.errors import DataError

    pool = load_dataset("digits").train
    path = write_subset(tmp_path / "s.txt", [5, 2, 9], comments=["made by hand"])
    assert path.read_text() == "# made by hand\n2\n5\n9\n"
    assert np.array_equal(apply_subset(pool, path, "digits").samples, pool.samples[[2, 5, 9]])
    write_subset(tmp_path / "far.txt", [1, 5000])
    with pytest.raises(DataError, match="lists sample 5000 but 'digits' has 1437"):
        apply_subset(pool, tmp_path / "far.txt", "digits")
    (tmp_path / "paths.txt").write_text("3\tcat/1.png\n")
    with pytest.raises(DataError, match="not an image folder"):
        apply_subset(pool, tmp_path / "paths.txt", "digits")


@pytest.mark.filterwarnings("ignore:.*has only .* training samples")
def test_subset_of_an_image_folder_names_its_files(tmp_path):
    from PIL import Image

    from labelless.data.subsets import apply_subset, write_subset
    from labelless.errors import DataError

    for name in ("a", "b"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(3):
            colour = (40 * i, 100 if name == "a" else 200, 0)
            Image.new("RGB", (8, 8), colour).save(tmp_path / "photos" / name / f"{i}.png")
    pool = load_dataset(tmp_path / "photos", load_size=8).train
    assert pool.meta["files"].tolist()[:2] == ["a/0.png", "a/1.png"]
    path = write_subset(tmp_path / "s.txt", [1, 4], files=pool.meta["files"])
    assert path.read_text() == "1\ta/1.png\n4\tb/1.png\n"
    picked = apply_subset(pool, path, "photos")
    assert np.array_equal(picked.samples, pool.samples[[1, 4]])
    (tmp_path / "photos" / "b" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1 path\(s\) missing from 'photos', e.g. 'b/1.png'"):
        apply_subset(load_dataset(tmp_path / "photos", load_size=8).train, path, "photos")


@pytest.mark.slow
def test_pretrain_subset_trains_on_exactly_those_samples(encoder, tmp_path, monkeypatch):
    import labelless.verbs.pretrain as pretrain_verb

    out = tmp_path / "curated"
    argv = ["curate", "digits", "--encoder", str(encoder), "--keep", "0.1", "--out", str(out)]
    assert main([*argv, "--strategy", "kcenter"]) == 0
    kept = _subset_rows(out / "subset.txt")
    seen = {}
    original = pretrain_verb.train_loader

    def spy(config, train, in_memory):
        seen["train"] = train
        return original(config, train, in_memory)

    monkeypatch.setattr(pretrain_verb, "train_loader", spy)
    run = tmp_path / "run"
    tiny = ["--data", "digits", "--method", "simclr", "--epochs", "1", "--batch-size", "64"]
    sets = ["backbone.width=0.125", "trainer.progress_bar=false", "monitor.every_n_epochs=100"]
    sets = [part for item in sets for part in ("--set", item)]
    code = main(["pretrain", *tiny, *sets, "--subset", str(out / "subset.txt"), "--out", str(run)])
    assert code == 0
    pool = load_dataset("digits").train
    assert np.array_equal(seen["train"].samples, pool.samples[kept])
    assert "subset:" in (run / "config.yaml").read_text()


def test_pretrain_refuses_a_subset_of_other_data(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("0\n99999\n")
    argv = ["pretrain", "--data", "digits", "--subset", str(bad), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "lists sample 99999 but 'digits' has 1437 training samples" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert (
        main([*argv[:-4], "--subset", str(tmp_path / "none.txt"), "--out", str(tmp_path / "q")])
        == 2
    )
    assert "subset file" in capsys.readouterr().err
