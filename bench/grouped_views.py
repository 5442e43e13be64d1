"""Grouped same-size view forwards (``methods.base.forward_grouped``) vs one backbone call per
view, in the track-A recipes (CIFAR-10 at 32 px, ResNet-18-CIFAR x0.25, float32,
``channels_last``, 2 threads): seconds per training step (views + forward + backward + SGD step)
and images per second.

Both modes run in the same process on the same batches, alternating (``--rounds`` rounds of
``--steps`` steps each, after a warm-up), so a busy machine slows both alike; the per-view mode
calls ``forward_grouped`` with ``group=False`` (``[encoder(v) for v in views]``), the grouped mode
with ``group=True``, whatever the device's default. The step-time ratio is the number to read.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/grouped_views.py
    .venv/bin/python bench/grouped_views.py --recipes dino_multicrop --steps 3 --rounds 2 --no-save
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment, set_view_grouping

from labelless.config import build_config, load_yaml
from labelless.data import from_arrays, load_dataset
from labelless.verbs.components import build_components

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {
    "simclr": ("configs/cifar10/simclr.yaml", {}),
    "dino": ("configs/cifar10/dino.yaml", {}),
    "dino_multicrop": ("configs/cifar10/dino.yaml", {"num_local_crops": 4}),
    "swav": ("configs/cifar10/swav.yaml", {}),
}


def _config(recipe: str):
    path, views = RECIPES[recipe]
    data = load_yaml(ROOT / path)
    data["views"].update(views)
    return build_config(data, path)


def _images(count: int) -> tuple[np.ndarray, str]:
    if data_available():
        train = load_dataset("cifar10").train
        rows = np.random.default_rng(0).choice(len(train), count, replace=False)
        return train.samples[np.sort(rows)], "cifar10 train"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8), "uniform random pixels"


def _time_steps(method, views, optimiser, batches, generator) -> list[float]:
    times = []
    for images in batches:
        start = time.perf_counter()
        out = method(views(images, generator=generator), {"inputs": images}, generator=generator)
        optimiser.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimiser.step()
        method.on_step_end(0.5)
        times.append(time.perf_counter() - start)
    return times


def measure(recipe: str, steps: int, rounds: int) -> dict:
    config = _config(recipe)
    torch.manual_seed(0)
    images, source = _images(config.optim.batch_size * steps)
    train = from_arrays(images, name="bench")
    _, method, views = build_components(config, train)
    modes = {"grouped": True, "per_view": False}
    optimiser = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    batch = config.optim.batch_size
    batches = [torch.from_numpy(images[i * batch : (i + 1) * batch]) for i in range(steps)]
    generator = torch.Generator().manual_seed(0)
    per_step: dict[str, list[float]] = {name: [] for name in modes}
    try:
        for group in modes.values():  # warm-up: allocator, kernels
            set_view_grouping(method, group)
            _time_steps(method, views, optimiser, batches[:2], generator)
        for _ in range(rounds):
            for name, group in modes.items():
                set_view_grouping(method, group)
                per_step[name] += _time_steps(method, views, optimiser, batches, generator)
    finally:
        set_view_grouping(method, None)
    seconds = {name: statistics.median(values) for name, values in per_step.items()}
    num_views = len(views(batches[0][:2], generator=generator))
    return {
        "bench": "grouped_views",
        "recipe": recipe,
        "config": RECIPES[recipe][0],
        "views": num_views,
        "batch_size": batch,
        "backbone": f"{config.backbone.name} x{config.backbone.width}",
        "images": source,
        "steps_per_mode": steps * rounds,
        "seconds_per_step": {name: round(value, 4) for name, value in seconds.items()},
        "images_per_second": {name: round(batch / value, 1) for name, value in seconds.items()},
        "speedup": round(seconds["per_view"] / seconds["grouped"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=6, help="steps per mode per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for recipe in args.recipes:
        record = {**measure(recipe, args.steps, args.rounds), **environment()}
        print(record, flush=True)
        if not args.no_save:
            print(f"appended to {append_result('grouped_views', record)}")


if __name__ == "__main__":
    main()
