"""``labelless audit`` end to end: a real run directory, every check at a tiny budget, through
the console script; the record and the page hold what each check promises."""

from __future__ import annotations

import json

import pytest

from .cli import run_cli, run_in_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "run"
    result = run_in_process(
        "pretrain", "--data", "digits", "--method", "simclr", "--epochs", "1", "--width", "0.125",
        "--out", str(out), "--set", "trainer.progress_bar=false", "--set", "trainer.threads=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_every_check_writes_its_numbers_and_figures(run, tmp_path):
    out = tmp_path / "audit"
    result = run_cli(
        "audit", str(run), "--data", "digits", "--out", str(out), "--shadow", "64",
        "--samples", "48", "--inversion-steps", "20", "--steps", "3", "--universal-epochs", "1",
        "--finetune-epochs", "1", "--neighbours", "4", "--epsilon", "0.1", one_thread=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "written:" in result.stdout and "backdoor-scan:" in result.stdout
    record = json.loads((out / "audit.json").read_text())
    checks = record["checks"]
    assert list(checks) == ["backdoor-scan", "adversarial", "detector", "data-scan"]
    scan = checks["backdoor-scan"]
    assert scan["verdict"] in ("backdoor suspected", "no backdoor found")
    assert 0 < scan["score"] <= 1 and list(scan["references"]) == ["random init (resnet18_cifar)"]
    assert scan["flagged"] == (scan["score"] < scan["threshold"])
    shifts = checks["adversarial"]["embedding_shift"]
    assert shifts["pgd"]["mean_cosine_distance"] > shifts["uniform noise"]["mean_cosine_distance"]
    downstream = checks["adversarial"]["downstream"]
    assert downstream["pgd"]["knn_top1"] <= downstream["clean"]["knn_top1"]
    transfer = checks["adversarial"]["transfer"]
    assert len(transfer["chosen_layers"]) == 2
    assert set(transfer["on_finetuned_model"]) == {"clean", "pgd", "dta"}
    assert 0 <= checks["detector"]["auroc"] <= 1
    assert checks["data-scan"]["scanned"] == 1437
    assert record["evaluated_images"] == 48 and record["shadow_size"] == 64
    assert record["encoder"]["weights_sha256"]
    page = (out / "audit.html").read_text()
    assert page.count("data:image/png;base64,") >= 7
    for name in checks:
        assert f"<h2>{name}</h2>" in page


def test_an_audit_folder_can_be_rewritten_by_audit(run, tmp_path):
    out = tmp_path / "again"
    args = ["audit", str(run), "--data", "digits", "--out", str(out), "--checks", "data-scan"]
    assert run_in_process(*args).returncode == 0
    assert run_in_process(*args).returncode == 0
    assert json.loads((out / "audit.json").read_text())["labelless"] == "audit"
