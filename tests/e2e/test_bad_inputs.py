"""The bad-input sweep (issue 16): one table of wrong or hostile inputs to every verb.

Each row runs ``labelless.cli.main(argv)`` in-process (``run_in_process``) and asserts the promise
of the command line: exit code 2, a one-line ``error:`` (after any ``warning:`` lines) naming the
problem, no traceback, no training step (an optimiser step fails the case, however fast or slow
the machine), and nothing written or changed, neither in the case's own folder (its copies of the
fixture files and runs) nor in the working directory where a default ``runs/`` would land.

A row is ``(id, argv, exit code, fragment)``: ``argv`` is split like a shell line and its
``{name}`` placeholders are the fixture paths (see ``_WORLD``); each case gets its own copy of the
ones it names, so a case that deletes or rewrites them cannot disturb another. ``{tmp}`` is the
case's scratch folder and ``{cwd}`` its working directory (which holds a user's file).
"""

from __future__ import annotations

import os
import shlex
import shutil
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ..helpers import snapshot
from .cli import error_lines, run_in_process

# The one tiny pretrained run every run-directory and checkpoint case starts from.
TINY_RUN = (
    "pretrain --data digits --method simclr --epochs 1 --batch-size 256 "
    "--set backbone.width=0.125 --set trainer.progress_bar=false --set monitor.every_n_epochs=1 "
    "--set trainer.threads=1"
)

E = 2  # exit code of a user error

# fmt: off
CASES: list[tuple[str, str, int, str]] = [
    # ---- listings
    ("methods-unknown-modality", "methods --modality audio", E,
     "choose one of graph, image, tabular, timeseries"),
    # ---- pretrain: numbers
    ("pretrain-epochs-zero", "pretrain --epochs 0 --out {tmp}/out", E, "max_epochs"),
    ("pretrain-epochs-negative", "pretrain --epochs -3 --out {tmp}/out", E, "max_epochs"),
    ("pretrain-batch-size-zero", "pretrain --batch-size 0 --out {tmp}/out", E, "batch_size"),
    ("pretrain-batch-size-negative", "pretrain --batch-size -8 --out {tmp}/out", E,
     "batch_size"),
    ("pretrain-batch-size-one", "pretrain --batch-size 1 --out {tmp}/out", E, "batch"),
    ("pretrain-lr-zero", "pretrain --lr 0 --out {tmp}/out", E, "optim.lr"),
    ("pretrain-lr-negative", "pretrain --lr -0.1 --out {tmp}/out", E, "optim.lr"),
    ("pretrain-lr-nan", "pretrain --lr nan --out {tmp}/out", E, "optim.lr"),
    ("pretrain-width-zero", "pretrain --width 0 --out {tmp}/out", E, "backbone.width"),
    ("pretrain-width-negative", "pretrain --width -1 --out {tmp}/out", E, "backbone.width"),
    ("pretrain-view-size-zero", "pretrain --view-size 0 --out {tmp}/out", E, "views.size"),
    ("pretrain-max-time-zero", "pretrain --max-time 0 --out {tmp}/out", E, "max_time"),
    ("pretrain-max-time-negative", "pretrain --max-time -60 --out {tmp}/out", E, "max_time"),
    ("pretrain-num-nodes-zero", "pretrain --num-nodes 0 --out {tmp}/out", E, "num_nodes"),
    ("pretrain-devices-zero", "pretrain --devices 0 --out {tmp}/out", E, "devices"),
    ("pretrain-devices-text", "pretrain --devices many --out {tmp}/out", E, "devices"),
    # ---- pretrain: names and choices
    ("pretrain-unknown-optimizer", "pretrain --optimizer adam --out {tmp}/out", E, "adam"),
    ("pretrain-unknown-precision", "pretrain --precision bogus --out {tmp}/out", E,
     "unknown precision 'bogus'"),
    ("pretrain-unknown-accelerator", "pretrain --accelerator bogus --out {tmp}/out", E,
     "unknown accelerator 'bogus'"),
    ("pretrain-init-and-weights", "pretrain --init {run} --weights {run}/encoder.safetensors "
     "--out {tmp}/out", E, "keep one of them"),
    ("pretrain-unknown-method", "pretrain --method simclrr --out {tmp}/out", E,
     "unknown method 'simclrr'"),
    ("pretrain-semi-method", "pretrain --method fixmatch --out {tmp}/out", E,
     "unknown method 'fixmatch'"),
    ("pretrain-method-wrong-modality", "pretrain --method scarf --out {tmp}/out", E,
     "trains on tabular data"),
    ("pretrain-unknown-backbone", "pretrain --backbone resnet19 --out {tmp}/out", E,
     "resnet19"),
    ("pretrain-unknown-strategy", "pretrain --strategy bogus --out {tmp}/out", E, "bogus"),
    ("pretrain-unknown-dataset", "pretrain --data cifar11 --out {tmp}/out", E, "cifar11"),
    ("pretrain-target-on-images", "pretrain --data digits --target label --out {tmp}/out", E,
     "--target"),
    # ---- pretrain: configs
    ("config-missing", "pretrain --config {tmp}/nope.yaml", E, "does not exist"),
    ("config-bad-yaml", "pretrain --config {configs}/bad.yaml", E, "not valid YAML"),
    ("config-tab-indent", "pretrain --config {configs}/tabs.yaml", E, "not valid YAML"),
    ("config-binary", "pretrain --config {configs}/binary.yaml", E, "binary.yaml"),
    ("config-a-folder", "pretrain --config {configs}", E, "configs"),
    ("config-list", "pretrain --config {configs}/list.yaml", E, "must hold a mapping"),
    ("config-scalar", "pretrain --config {configs}/scalar.yaml", E, "must hold a mapping"),
    ("config-typo-did-you-mean", "pretrain --config {configs}/typo.yaml", E,
     "did you mean optim.lr"),
    ("config-unknown-section", "pretrain --config {configs}/section.yaml", E,
     "did you mean optim?"),
    ("config-wrong-type", "pretrain --config {configs}/wrong_type.yaml", E, "optim.lr"),
    ("config-out-of-range", "pretrain --config {configs}/range.yaml", E, "trainer.max_epochs"),
    ("config-section-is-value", "pretrain --config {configs}/flat.yaml", E, "optim"),
    ("config-infinite-phases", "pretrain --config {configs}/phases.yaml", E, "exceed 1"),
    ("set-without-equals", "pretrain --set optim.lr --out {tmp}/out", E, "key=value"),
    ("set-empty-key", "pretrain --set =3 --out {tmp}/out", E, "empty key"),
    ("set-into-a-default-value", "pretrain --set optim.lr.peak=1 --out {tmp}/out", E,
     "optim.lr"),
    ("set-into-a-config-value", "pretrain --config {configs}/good.yaml "
     "--set trainer.max_epochs.limit=1 --out {tmp}/out", E, "is a value, not a section"),
    ("set-bad-yaml", "pretrain --set optim.lr=[0.1 --out {tmp}/out", E, "not valid YAML"),
    ("set-typo-did-you-mean", "pretrain --set optim.lrr=0.1 --out {tmp}/out", E,
     "did you mean optim.lr"),
    ("set-wrong-type", "pretrain --set optim.lr=fast --out {tmp}/out", E, "optim.lr"),
    ("set-out-of-range", "pretrain --set optim.momentum=1.5 --out {tmp}/out", E,
     "optim.momentum"),
    ("set-bad-choice", "pretrain --set optim.schedule=linear --out {tmp}/out", E,
     "optim.schedule"),
    ("set-section-to-value", "pretrain --set optim=3 --out {tmp}/out", E, "optim"),
    ("set-load-size-zero", "pretrain --set data.load_size=0 --out {tmp}/out", E,
     "data.load_size"),
    ("set-knn-k-zero", "pretrain --set monitor.knn_k=0 --out {tmp}/out", E, "monitor.knn_k"),
    ("set-unknown-section", "pretrain --set optimiser.lr=0.1 --out {tmp}/out", E, "optimiser"),
    ("config-unknown-method", "pretrain --config {configs}/method.yaml", E,
     "unknown method 'simclrr'"),
    ("set-unknown-method-kwarg", "pretrain --set method.kwargs.temprature=0.2 --out {tmp}/out",
     E, "temprature"),
    # ---- pretrain: data
    ("data-missing-path", "pretrain --data {tmp}/no_such_folder --out {tmp}/out", E,
     "does not exist"),
    ("data-empty-folder", "pretrain --data {empty} --out {tmp}/out", E, "empty"),
    ("data-not-images", "pretrain --data {not_images} --out {tmp}/out", E, "image"),
    ("data-corrupt-images", "pretrain --data {corrupt} --out {tmp}/out", E,
     "could be decoded"),
    ("data-plain-file", "pretrain --data {notes} --out {tmp}/out", E, "notes.txt"),
    ("csv-unknown-target", "pretrain --data {table} --target labl --out {tmp}/out", E, "labl"),
    ("csv-empty", "pretrain --data {empty_csv} --method scarf --out {tmp}/out", E,
     "empty.csv"),
    ("csv-header-only", "pretrain --data {header_csv} --method scarf --out {tmp}/out", E,
     "header.csv"),
    ("csv-only-target", "pretrain --data {target_csv} --target label --method scarf "
     "--out {tmp}/out", E, "no feature columns"),
    ("csv-nan-rejected", "pretrain --data {nan_csv} --target label --method scarf "
     "--set data.options.missing=reject --out {tmp}/out", E, "missing values"),
    ("csv-bad-missing-policy", "pretrain --data {table} --target label --method scarf "
     "--set data.options.missing=drop --out {tmp}/out", E, "missing must be one of"),
    ("csv-bad-test-fraction", "pretrain --data {table} --target label --method scarf "
     "--set data.options.test=1.5 --out {tmp}/out", E, "(0, 1)"),
    ("csv-image-method", "pretrain --data {table} --target label --method simclr "
     "--out {tmp}/out", E, "trains on image data"),
    ("ts-no-data-line", "pretrain --data {ts_no_data} --method ts2vec --out {tmp}/out", E,
     "no @data line"),
    ("ts-data-before-header", "pretrain --data {ts_headless} --method ts2vec --out {tmp}/out",
     E, "expected a @header line"),
    ("ts-ragged-dimensions", "pretrain --data {ts_ragged} --method ts2vec --out {tmp}/out", E,
     "dimensions"),
    ("ts-not-a-number", "pretrain --data {ts_text} --method ts2vec --out {tmp}/out", E,
     "must be a number"),
    ("ts-timestamps", "pretrain --data {ts_timestamps} --method ts2vec --out {tmp}/out", E,
     "@timestamps"),
    ("ts-label-not-in-header", "pretrain --data {ts_label} --method ts2vec --out {tmp}/out", E,
     "labels_TRAIN.ts:7"),
    # ---- pretrain: run directories
    ("out-data-folder", "pretrain --data {labelled} --out {labelled} --epochs 1", E,
     "training data"),
    ("out-data-folder-overwrite", "pretrain --data {labelled} --out {labelled} --overwrite "
     "--epochs 1", E, "training data"),
    ("out-inside-data-folder", "pretrain --data {labelled} --out {labelled}/cat/run --epochs 1",
     E, "inside the data folder"),
    ("out-working-directory", "pretrain --out . --epochs 1", E, "working directory"),
    ("out-working-directory-overwrite", "pretrain --out . --overwrite --epochs 1", E,
     "working directory"),
    ("out-parent-of-cwd-overwrite", "pretrain --out {cwd}/.. --overwrite --epochs 1", E,
     "working directory"),
    ("out-below-a-file", "pretrain --out {notes}/run --epochs 1", E, "notes.txt"),
    ("out-under-proc", "pretrain --out /proc/labelless-run --epochs 1", E, "/proc"),
    ("out-empty-string", "pretrain --out '' --epochs 1", E, "--out"),
    ("resume-without-out", "pretrain --resume", E, "--out"),
    ("resume-missing-run", "pretrain --resume --out {tmp}/never_ran", E, "never_ran"),
    ("resume-user-folder", "pretrain --resume --out {docs}", E, "a run directory"),
    ("resume-with-config", "pretrain --resume --out {run} --config {configs}/good.yaml", E,
     "drop --config"),
    ("resume-other-method", "pretrain --resume --out {run} --method byol --epochs 2", E,
     "method"),
    ("resume-other-data", "pretrain --resume --out {run} --data {labelled} --epochs 2", E,
     "data"),
    ("out-existing-run", "pretrain --out {run} --epochs 1", E, "--resume"),
    ("out-user-folder", "pretrain --out {docs} --epochs 1", E, "not a labelless run"),
    ("out-user-folder-overwrite", "pretrain --out {docs} --overwrite --epochs 1", E,
     "not a labelless run"),
    ("resume-without-checkpoint", "pretrain --resume --out {stub}", E,
     "before its first checkpoint"),
    ("resume-truncated-checkpoint", "pretrain --resume --out {truncated} --epochs 2", E,
     "last.ckpt"),
    ("resume-garbage-checkpoint", "pretrain --resume --out {garbage} --epochs 2", E,
     "last.ckpt"),
    # ---- pretrain: start from an encoder
    ("init-missing", "pretrain --init {tmp}/no_run --out {tmp}/out", E, "no_run"),
    ("init-user-folder", "pretrain --init {docs} --out {tmp}/out", E, "encoder"),
    ("init-lone-file", "pretrain --init {bad_encoder} --out {tmp}/out", E, "garbage.json"),
    ("init-garbage-encoder", "pretrain --init {broken_export}/encoder.safetensors "
     "--out {tmp}/out", E, "encoder.safetensors"),
    ("init-empty-encoder", "pretrain --init {empty_export} --out {tmp}/out", E,
     "encoder.safetensors"),
    ("init-a-table", "pretrain --init {table} --out {tmp}/out", E, "table.csv"),
    ("init-other-architecture", "pretrain --init {run} --width 0.25 --out {tmp}/out", E,
     "width"),
    ("weights-missing", "pretrain --weights {tmp}/no.safetensors --out {tmp}/out", E,
     "no.safetensors"),
    # ---- semi
    ("semi-unknown-method", "semi --method fixmatchh --out {tmp}/out", E,
     "unknown semi-supervised method 'fixmatchh'"),
    ("semi-labels-per-class-zero", "semi --labels-per-class 0 --out {tmp}/out", E,
     "labels_per_class"),
    ("semi-label-fraction-zero", "semi --label-fraction 0 --out {tmp}/out", E,
     "label_fraction"),
    ("semi-label-fraction-above-one", "semi --label-fraction 1.5 --out {tmp}/out", E,
     "label_fraction"),
    ("semi-two-label-splits", "semi --labels-per-class 2 --label-fraction 0.1 --out {tmp}/out",
     E, "keep one"),
    ("semi-mu-zero", "semi --mu 0 --out {tmp}/out", E, "mu"),
    ("semi-known-classes-zero", "semi --known-classes 0 --out {tmp}/out", E, "known_classes"),
    ("semi-saa-outside-family", "semi --method mixmatch --saa --out {tmp}/out", E,
     "FixMatch family"),
    ("semi-wad-without-teacher", "semi --method wad --known-classes 6 --out {tmp}/out", E,
     "teacher: ema"),
    ("semi-epochs-zero", "semi --epochs 0 --out {tmp}/out", E, "max_epochs"),
    ("semi-batch-size-zero", "semi --batch-size 0 --out {tmp}/out", E, "batch_size"),
    ("semi-lr-negative", "semi --lr -1 --out {tmp}/out", E, "optim.lr"),
    ("semi-precision-bogus", "semi --precision bogus --out {tmp}/out", E,
     "unknown precision 'bogus'"),
    ("semi-config-typo", "semi --config {configs}/semi_typo.yaml --out {tmp}/out", E,
     "did you mean semi.labels_per_class"),
    ("semi-set-without-equals", "semi --set semi.mu --out {tmp}/out", E, "key=value"),
    ("semi-resume-without-out", "semi --resume", E, "--out"),
    ("semi-resume-with-config", "semi --resume --out {run} --config {configs}/good.yaml", E,
     "drop --config"),
    ("semi-out-working-directory", "semi --out . --overwrite", E, "working directory"),
    ("semi-labels-per-class-too-many", "semi --labels-per-class 1000 --out {tmp}/out", E,
     "lower it"),
    ("semi-known-classes-all", "semi --method iomatch --labels-per-class 2 --known-classes 12 "
     "--out {tmp}/out", E, "known_classes must be in 1..10"),
    ("semi-unlabelled-folder", "semi --data {unlabelled} --out {tmp}/out", E, "no labels"),
    ("semi-numeric-target", "semi --data {table} --target x1 --out {tmp}/out", E,
     "numeric"),
    ("semi-unknown-target", "semi --data {table} --target labl --out {tmp}/out", E, "labl"),
    ("semi-init-missing", "semi --labels-per-class 2 --init {tmp}/no_run --out {tmp}/out", E,
     "no_run"),
    ("semi-resume-without-checkpoint", "semi --resume --out {semi_stub}", E,
     "before its first checkpoint"),
    ("semi-resume-truncated-checkpoint", "semi --resume --out {semi_truncated} --epochs 2", E,
     "last.ckpt"),
    ("semi-out-user-folder-overwrite", "semi --out {docs} --overwrite", E,
     "not a labelless run"),
    # ---- evaluate
    ("evaluate-missing-run", "evaluate {tmp}/nothing", E, "nothing"),
    ("evaluate-missing-encoder-file", "evaluate {tmp}/gone/encoder.safetensors --out {tmp}/eval",
     E, "gone"),
    ("evaluate-user-folder", "evaluate {docs}", E, "not a labelless run"),
    ("evaluate-run-without-encoder", "evaluate {stub}", E, "encoder.safetensors"),
    ("evaluate-k-zero", "evaluate {run} --k 0", E, "--k"),
    ("evaluate-k-negative", "evaluate {run} --k -5", E, "--k"),
    ("evaluate-temperature-zero", "evaluate {run} --temperature 0", E, "--temperature"),
    ("evaluate-temperature-negative", "evaluate {run} --temperature -1", E, "--temperature"),
    ("evaluate-unknown-data", "evaluate {run} --data cifar11", E, "cifar11"),
    ("evaluate-unlabelled-folder", "evaluate {run} --data {unlabelled}", E, "labels"),
    ("evaluate-table-without-test-split", "evaluate {run} --data {table} --target label", E,
     "--test-fraction"),
    ("evaluate-table-on-image-encoder", "evaluate {run} --data {table} --target label "
     "--test-fraction 0.2", E, "tabular"),
    ("evaluate-encoder-file-without-out", "evaluate {run}/encoder.safetensors", E, "--out"),
    ("evaluate-lone-encoder-file", "evaluate {bad_encoder} --out {tmp}/eval", E,
     "garbage.json"),
    ("evaluate-garbage-encoder", "evaluate {broken_export}/encoder.safetensors "
     "--out {tmp}/eval", E, "encoder.safetensors"),
    ("evaluate-empty-encoder", "evaluate {empty_export} --out {tmp}/eval", E,
     "encoder.safetensors"),
    ("evaluate-input-size-zero", "evaluate {run} --input-size 0", E, "--input-size"),
    ("evaluate-bad-normalize", "evaluate {run} --normalize bogus", E, "bogus"),
    ("evaluate-normalize-zero-std", "evaluate {run} --normalize 0.5/0", E,
     "std must be positive"),
    ("evaluate-test-fraction-builtin", "evaluate {run} --data digits --test-fraction 0.2", E,
     "apply to data files"),
    ("evaluate-unknown-timm", "evaluate timm:no_such_net --out {tmp}/eval", E, "no_such_net"),
    ("evaluate-test-fraction-above-one", "evaluate {run} --data {table} --target label "
     "--test-fraction 1.5", E, "--test-fraction must be a fraction"),
    # ---- compare, report
    ("compare-missing-run", "compare {tmp}/nothing --out {tmp}/c.html", E, "nothing"),
    ("compare-user-folder", "compare {docs} --out {tmp}/c.html", E, "metrics.json"),
    ("report-missing-run", "report {tmp}/nothing", E, "nothing"),
    ("report-user-folder", "report {docs}", E, "not a run directory"),
    ("report-unknown-map", "report {run} --map umop", E, "umop"),
    ("report-run-without-encoder", "report {stub}", E, "encoder"),
    # ---- prune, finetune, select
    ("prune-sparsity-above-one", "prune {run} --sparsity 1.5", E, "1.5"),
    ("prune-sparsity-negative", "prune {run} --sparsity -0.1", E, "-0.1"),
    ("prune-sparsity-text", "prune {run} --sparsity half", E, "half"),
    ("prune-sparsity-empty", "prune {run} --sparsity ''", E, "--sparsity"),
    ("prune-k-zero", "prune {run} --k 0", E, "--k"),
    ("prune-missing-run", "prune {tmp}/nothing", E, "nothing"),
    ("prune-user-folder", "prune {docs}", E, "not a labelless run"),
    ("prune-unlabelled-data", "prune {run} --data {unlabelled}", E, "labels"),
    ("finetune-epochs-zero", "finetune {run} --epochs 0", E, "--epochs"),
    ("finetune-batch-size-zero", "finetune {run} --batch-size 0", E, "--batch-size"),
    ("finetune-lr-zero", "finetune {run} --lr 0", E, "--lr"),
    ("finetune-val-fraction-zero", "finetune {run} --val-fraction 0", E, "--val-fraction"),
    ("finetune-val-fraction-one", "finetune {run} --val-fraction 1", E, "--val-fraction"),
    ("finetune-missing-run", "finetune {tmp}/nothing", E, "nothing"),
    ("finetune-unlabelled-data", "finetune {run} --data {unlabelled}", E, "labels"),
    ("select-unknown-measure", "select {run} --measure rankmee", E, "rankmee"),
    ("select-unknown-split", "select {run} --split valid", E, "valid"),
    ("select-max-samples-zero", "select {run} --max-samples 0", E, "--max-samples"),
    ("select-missing-run", "select {tmp}/nothing", E, "nothing"),
    ("select-user-folder", "select {docs}", E, "not a run directory"),
    ("select-missing-data", "select {run} --data {tmp}/no_such_folder", E, "does not exist"),
    # ---- usage errors of the listings
    ("methods-extra-argument", "methods simclr", E, "unexpected extra argument"),
    ("unknown-verb", "pretrian", E, "Did you mean 'pretrain'"),
    ("datasets-unknown-option", "datasets --all", E, "No such option"),
    # ---- pretrain: numbers
    ("pretrain-epochs-text", "pretrain --epochs ten --out {tmp}/out", E, "--epochs"),
    ("pretrain-epochs-float", "pretrain --epochs 1.5 --out {tmp}/out", E, "--epochs"),
    ("pretrain-lr-inf", "pretrain --lr inf --out {tmp}/out", E, "optim.lr"),
    ("pretrain-seed-negative", "pretrain --seed -1 --out {tmp}/out", E, "seed"),
    ("pretrain-seed-text", "pretrain --seed abc --out {tmp}/out", E, "--seed"),
    # ---- pretrain: data
    ("csv-unknown-option", "pretrain --data {table} --target label --method scarf "
     "--set data.options.scalling=standard --out {tmp}/out", E, "scalling"),
    # ---- pretrain: run directories
    ("resume-and-overwrite", "pretrain --resume --overwrite --out {run}", E, "--overwrite"),
    # ---- semi
    ("semi-config-names-its-file", "semi --config {configs}/semi_range.yaml --out {tmp}/out", E,
     "semi_range.yaml"),
    ("semi-resume-a-pretrain-run", "semi --resume --out {run}", E, "pretrain"),
    # ---- evaluate
    ("evaluate-no-encoder", "evaluate", E, "Missing argument"),
    ("evaluate-k-text", "evaluate {run} --k many", E, "--k"),
    ("evaluate-out-below-a-file", "evaluate {run}/encoder.safetensors --out {notes}/eval", E,
     "notes.txt"),
    # ---- compare, report
    ("compare-nothing", "compare", E, "Missing argument"),
    ("compare-unknown-metric", "compare {run} --rank-by knn_top2 --out {tmp}/c.html", E,
     "knn_top2"),
    ("compare-out-below-a-file", "compare {run} --out {notes}/c.html", E, "notes.txt"),
    ("compare-out-under-proc", "compare {run} --out /proc/labelless.html", E, "/proc"),
    # ---- audit
    ("audit-epsilon-too-big", "audit {run} --data digits --out {tmp}/a --epsilon 8", E,
     "--epsilon"),
    ("audit-epsilon-zero", "audit {run} --data digits --out {tmp}/a --epsilon 0", E, "--epsilon"),
    ("audit-unknown-check", "audit {run} --data digits --out {tmp}/a --checks backdoor", E,
     "backdoor"),
    ("audit-shadow-too-small", "audit {run} --data digits --out {tmp}/a --shadow 5", E,
     "--shadow"),
    ("audit-shadow-too-big", "audit {run} --data digits --out {tmp}/a --shadow 100000", E,
     "--shadow"),
    ("audit-wrong-channels", "audit {run} --data {labelled} --out {tmp}/a", E, "channel"),
    ("audit-table", "audit {run} --data {table} --out {tmp}/a", E, "table"),
    ("audit-missing-encoder", "audit {tmp}/nothing --data digits --out {tmp}/a", E, "nothing"),
    ("audit-user-folder", "audit {run} --data digits --out {docs}", E, "did not write"),
    ("audit-missing-reference", "audit {run} --data digits --out {tmp}/a --reference "
     "{tmp}/gone", E, "--reference"),
]
# fmt: on


# ---------------------------------------------------------------------------------------------
# The fixture files: a name -> a builder that creates ``path`` (a file or a folder).


def _images(folder: Path, count: int, seed: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")


def _labelled(path: Path) -> None:
    for seed, name in enumerate(("cat", "dog")):
        _images(path / name, 6, seed)


def _unlabelled(path: Path) -> None:
    _images(path, 12, 7)


def _not_images(path: Path) -> None:
    path.mkdir()
    for name in ("a.txt", "b.txt", "c.md"):
        (path / name).write_text("not an image\n")


def _corrupt(path: Path) -> None:
    path.mkdir()
    for i in range(4):
        (path / f"img{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def _docs(path: Path) -> None:
    """A folder of a user's documents: what --out and --overwrite must never touch."""
    (path / "photos").mkdir(parents=True)
    (path / "thesis.docx").write_bytes(np.random.default_rng(3).bytes(5000))
    (path / "notes.txt").write_text("buy milk\n")
    (path / "photos" / "holiday.jpg").write_bytes(np.random.default_rng(4).bytes(3000))
    os.chmod(path / "notes.txt", 0o600)


def _table(path: Path, rows: int = 40, nan: bool = False) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.normal(size=rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "label": rng.choice(["a", "b"], rows),
        }
    )
    if nan:
        frame.loc[::5, "x1"] = np.nan
    frame.to_csv(path, index=False)


def _ts(header: str, lines: list[str]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_text(header + "\n".join(lines) + "\n")

    return build


_TS_HEADER = "@problemName toy\n@univariate true\n@equalLength true\n@classLabel true 1 2\n@data\n"


def _configs(path: Path) -> None:
    path.mkdir()
    files = {
        "bad.yaml": "optim: {lr: [0.1\n",
        "tabs.yaml": "optim:\n\tlr: 0.1\n",
        "list.yaml": "- optim\n- trainer\n",
        "scalar.yaml": "42\n",
        "typo.yaml": "optim:\n  lrr: 0.1\n",
        "section.yaml": "optimm:\n  lr: 0.1\n",
        "wrong_type.yaml": "optim:\n  lr: fast\n",
        "range.yaml": "trainer:\n  max_epochs: -3\n",
        "flat.yaml": "optim: 0.1\n",
        "method.yaml": "method:\n  name: simclrr\n",
        "phases.yaml": "optim:\n  schedule: infinite\n  cooldown_fraction: 0.8\n"
        "  anneal_fraction: 0.5\n",
        "good.yaml": "trainer:\n  max_epochs: 2\n",
        "semi_typo.yaml": "semi:\n  label_per_class: 4\n",
        "semi_range.yaml": "semi:\n  mu: -1\n",
    }
    for name, text in files.items():
        (path / name).write_text(text)
    (path / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01\x80garbage\x00")


def _run_copy(source: Path, path: Path, checkpoint: bytes | None) -> None:
    """A copy of the tiny run without its report; ``checkpoint`` replaces last.ckpt."""
    shutil.copytree(source, path, ignore=shutil.ignore_patterns("figures", "report.html"))
    if checkpoint is not None:
        (path / "checkpoints" / "last.ckpt").write_bytes(checkpoint)


def _stub(source: Path, path: Path) -> None:
    """What a start that failed before its first checkpoint leaves: config.yaml and an empty
    checkpoints/ (no encoder)."""
    (path / "checkpoints").mkdir(parents=True)
    shutil.copy2(source / "config.yaml", path / "config.yaml")


def _semi_stub(source: Path, path: Path) -> None:
    """What a semi start that failed before its first checkpoint leaves."""
    (path / "checkpoints").mkdir(parents=True)
    config = {
        "data": {"name": "digits"},
        "backbone": {"width": 0.125},
        "semi": {"method": "fixmatch", "labels_per_class": 2},
        "trainer": {"max_epochs": 1, "progress_bar": False},
        "report": False,
        "out": str(path),
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))


def _semi_truncated(source: Path, path: Path) -> None:
    """A semi run whose last.ckpt was cut short."""
    _semi_stub(source, path)
    data = (source / "checkpoints" / "last.ckpt").read_bytes()
    (path / "checkpoints" / "last.ckpt").write_bytes(data[: len(data) // 2])


def _export(source: Path, path: Path, weights: bytes) -> None:
    """An exported encoder folder: the run's encoder.json beside a broken encoder.safetensors."""
    path.mkdir()
    shutil.copy2(source / "encoder.json", path / "encoder.json")
    (path / "encoder.safetensors").write_bytes(weights)


_WORLD: dict[str, Callable[[Path], None]] = {
    "labelled": _labelled,
    "unlabelled": _unlabelled,
    "empty": lambda path: path.mkdir(),
    "not_images": _not_images,
    "corrupt": _corrupt,
    "docs": _docs,
    "notes": lambda path: path.write_text("a regular file\n"),
    "table": _table,
    "nan_csv": lambda path: _table(path, nan=True),
    "empty_csv": lambda path: path.write_text(""),
    "header_csv": lambda path: path.write_text("x1,x2,label\n"),
    "target_csv": lambda path: path.write_text("label\na\nb\na\nb\n"),
    "ts_no_data": _ts("@problemName toy\n@classLabel true 1 2\n", []),
    "ts_headless": _ts("", ["1,2,3:1", "@data"]),
    "ts_ragged": _ts(_TS_HEADER, ["1,2,3:1", "1,2,3:4,5,6:2"]),
    "ts_text": _ts(_TS_HEADER, ["1,2,3:1", "1,two,3:2"]),
    "ts_timestamps": _ts("@timestamps true\n" + _TS_HEADER, ["1,2,3:1"]),
    "ts_label": _ts(_TS_HEADER, ["1,2,3:1", "1,2,4:3", "2,2,3:2"]),
    "configs": _configs,
    "bad_encoder": lambda path: path.write_bytes(b"garbage" * 100),
    "empty_encoder": lambda path: path.write_bytes(b""),
}
# File names where the loader goes by the suffix.
_NAMES = {
    "notes": "notes.txt",
    "table": "table.csv",
    "nan_csv": "nan.csv",
    "empty_csv": "empty.csv",
    "header_csv": "header.csv",
    "target_csv": "target.csv",
    "ts_no_data": "nodata_TRAIN.ts",
    "ts_headless": "headless_TRAIN.ts",
    "ts_ragged": "ragged_TRAIN.ts",
    "ts_text": "text_TRAIN.ts",
    "ts_timestamps": "stamps_TRAIN.ts",
    "ts_label": "labels_TRAIN.ts",
    "bad_encoder": "garbage.safetensors",
    "empty_encoder": "empty.safetensors",
}
# Built from the tiny pretrained run.
_FROM_RUN: dict[str, Callable[[Path, Path], None]] = {
    "truncated": lambda run, path: _run_copy(
        run, path, (run / "checkpoints" / "last.ckpt").read_bytes()[:65536]
    ),
    "garbage": lambda run, path: _run_copy(run, path, b"not a checkpoint\n" * 500),
    "stub": _stub,
    "semi_truncated": _semi_truncated,
    "semi_stub": _semi_stub,
    "broken_export": lambda run, path: _export(run, path, b"garbage" * 100),
    "empty_export": lambda run, path: _export(run, path, b""),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Every fixture file, and the tiny run, built once; cases copy what they name."""
    root = tmp_path_factory.mktemp("world")
    for name, build in _WORLD.items():
        build(root / _NAMES.get(name, name))
    run = run_in_process(*shlex.split(TINY_RUN), "--out", str(root / "run"), cwd=root)
    assert run.returncode == 0, f"the tiny pretrained run failed: {run.stderr[-2000:]}"
    for name, build in _FROM_RUN.items():
        build(root / "run", root / name)
    return root


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _materialise(template: str, world: Path, case_dir: Path) -> list[str]:
    """``template``'s argv with the case's own copies of the fixture paths it names."""
    scratch = case_dir / "tmp"
    scratch.mkdir()
    paths = {"tmp": str(scratch), "cwd": str(case_dir / "cwd")}
    for name in _placeholders(template) - set(paths):
        source = world / _NAMES.get(name, name)
        target = scratch / source.name
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        paths[name] = str(target)
    return [part.format(**paths) for part in shlex.split(template)]


class WentOnToTrain(BaseException):
    """A case reached an optimiser step (a BaseException: no ``except Exception`` swallows it)."""


@contextmanager
def _no_training() -> Iterator[None]:
    """Fail the case at its first optimiser step, whatever the optimiser and the loop: a bad
    input must be refused before any training."""

    def refuse(optimizer, args, kwargs):
        raise WentOnToTrain(f"the case went on to train ({type(optimizer).__name__}.step)")

    handle = register_optimizer_step_pre_hook(refuse)
    try:
        yield
    finally:
        handle.remove()


def run_case(template: str, world: Path, case_dir: Path) -> tuple[int, str, dict, dict]:
    """Run one row in-process: ``(exit code, stderr, snapshot before, snapshot after)``."""
    argv = _materialise(template, world, case_dir)
    cwd = case_dir / "cwd"
    cwd.mkdir()
    (cwd / "todo.md").write_text("a file of the user's in the working directory\n")
    before = snapshot(case_dir)
    with _no_training():
        result = run_in_process(*argv, cwd=cwd)
    return result.returncode, result.stderr, before, snapshot(case_dir)


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [pytest.param(argv, code, fragment, id=name) for name, argv, code, fragment in CASES],
)
def test_bad_input(argv, code, fragment, world, tmp_path):
    exit_code, stderr, before, after = run_case(argv, world, tmp_path)
    assert exit_code == code, stderr
    assert "Traceback" not in stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert fragment in lines[0], stderr
    assert after == before, "the failed command wrote or changed files"


def test_a_case_that_goes_on_to_train_fails(world, tmp_path):
    """The no-training check is only as good as its hook: a valid command reaches an optimiser
    step and the case fails there."""
    with pytest.raises(WentOnToTrain):
        run_case(TINY_RUN + " --out {tmp}/out", world, tmp_path)


def test_the_table_is_large_and_ids_unique():
    names = [row[0] for row in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 110


def test_the_snapshot_sees_a_rewrite_a_chmod_and_a_removed_probe(tmp_path):
    """The "nothing changed" check is only as good as the snapshot: same bytes rewritten, a mode
    change, and an entry created then removed again are all changes."""
    note = tmp_path / "docs" / "note.txt"
    note.parent.mkdir()
    note.write_text("keep\n")
    os.utime(note.parent, ns=(10**18, 10**18))
    before = snapshot(tmp_path)
    assert snapshot(tmp_path) == before
    os.utime(note, ns=(10**18, 10**18))
    assert snapshot(tmp_path) != before
    before = snapshot(tmp_path)
    note.chmod(0o600)
    assert snapshot(tmp_path) != before
    before = snapshot(tmp_path)
    (note.parent / ".probe").mkdir()
    (note.parent / ".probe").rmdir()
    assert snapshot(tmp_path) != before
