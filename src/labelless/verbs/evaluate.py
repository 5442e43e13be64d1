"""``labelless evaluate``: every frozen-embedding metric of any encoder on labelled data, with
the preprocessing protocol, merged into the run's ``metrics.json`` or written to ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelless.config import KNN_K
from labelless.encoders import resolve_preprocessing
from labelless.errors import ConfigError
from labelless.verbs.scoring import score
from labelless.verbs.targets import (
    data_label,
    embed_with,
    knn_k_for,
    labelled_splits,
    load_for,
    read_json,
    resolve_target,
    run_data_options,
    same_encoder,
    write_json,
)


def evaluate_encoder(
    spec,
    data: str | Path = "digits",
    *,
    weights: str | Path | None = None,
    k: int | None = None,
    temperature: float = 0.1,
    input_size: int | None = None,
    normalize: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    write: bool = True,
    data_options: dict[str, Any] | None = None,
    knn_search: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path | None]:
    """Every frozen-embedding metric of the encoder ``spec`` on ``data`` (train -> test,
    ``verbs.scoring.score`` with the modality's trained heads), with the preprocessing
    protocol; returns ``(metrics, metrics.json written or None)``. ``k`` None: the k of the
    encoder's run, else its modality's (``targets.knn_k_for``). ``knn_search``: the kNN's
    neighbour search (``backend`` auto / torch / faiss, ``nprobe``, ``ivf_min_rows``), checked
    before anything is embedded.

    The metrics go under ``evaluations["<data> [<preprocessing>]"]`` of ``metrics.json`` in the
    run directory (merged with what is there) or in ``out``.
    """
    from labelless.evaluate.checks import check_fraction, check_int, check_knn_options
    from labelless.evaluate.neighbours import check_knn_search

    check_knn_options(KNN_K if k is None else k, temperature)
    check_knn_search(knn_search or {})
    check_int("--seed", seed, 0, 0)
    if isinstance((data_options or {}).get("test"), (int, float)):
        check_fraction("--test-fraction", data_options["test"], 0.2)
    target = resolve_target(spec, out, "evaluate") if write else None
    data_options = data_options or run_data_options(spec, data)
    splits = labelled_splits(data, **data_options)
    train, test = splits.train, splits.test
    model, source = load_for(spec, weights, train, data)
    k = knn_k_for(spec, model, k)
    metrics_path = target.files.metrics_json if target else None
    existing = read_json(metrics_path) if metrics_path else {}
    if target and not target.is_run and not same_encoder(existing, source):
        raise ConfigError(
            f"{str(metrics_path)!r} holds another encoder's metrics; choose another --out"
        )
    pre = resolve_preprocessing(
        model.meta,
        data_mean=train.meta.get("mean"),
        data_std=train.meta.get("std"),
        input_size=input_size,
        normalize=normalize,
    )
    train_z, test_z = embed_with(model, train.samples, pre), embed_with(model, test.samples, pre)
    metrics = score(
        model,
        train,
        test,
        train_z,
        test_z,
        k=k,
        temperature=temperature,
        seed=seed,
        trained_heads=True,
        label=data_label(data),
        knn_search=knn_search,
    )
    metrics["protocol"].update(
        preprocessing=pre.protocol(),
        data=data_label(data),
        data_options=data_options,
        final_not_best=True,
    )
    metrics["encoder"] = source
    if target is None:
        return metrics, None
    key = f"{data_label(data)} [{pre.tag()}]"
    record = dict(existing)
    if not target.is_run:
        record["encoder"] = source
    record.setdefault("evaluations", {})[key] = metrics
    return metrics, write_json(metrics_path, record)
