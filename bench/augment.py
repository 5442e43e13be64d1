"""Augmentation throughput: labelless's batched view recipes vs a per-sample torchvision v2 loop.

For each recipe and view size, one uint8 batch (256 images at 32 px, 128 at 96, 64 at 224; the
source images are already at the view size) goes through ``view_recipe(name, size=size, ...)``
on ``--threads`` torch threads, and sample by sample through a torchvision v2 Compose built from
the SAME ViewSpec parameters (``torchvision_pipeline``), as a DataLoader worker would, then stacked
per view as a collate function would. Both run in this process, interleaved repeat by repeat.

    .venv/bin/python bench/augment.py                      # all recipes, sizes 32, 96, 224
    .venv/bin/python bench/augment.py --quick --no-save    # smoke run: 32 px, 3 repeats
    LABELLESS_DATA=../shared/data .venv/bin/python bench/augment.py --recipes simclr byol

images/s counts SOURCE images per second, each turned into all of the recipe's views (what a
training step consumes). The torchvision loop runs on 1 thread (DataLoader workers are 1-thread
processes); ``torchvision_images_per_s`` credits it with ``threads`` such workers scaling
perfectly (the loop's rate x threads), an upper bound for the baseline on the same cores. The raw
loop rate is recorded as ``torchvision_loop_images_per_s``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, environment, peak_rss_mb

from labelless.augment import RECIPES, ViewSpec, view_recipe
from labelless.augment.image import default_blur_kernel_size
from labelless.data import channel_stats, data_root
from labelless.errors import ConfigError
from labelless.runtime import tune_allocator

SIZES = (32, 96, 224)
BATCH = {32: 256, 96: 128, 224: 64}
FILL = 128  # uint8 equivalent of the 0.5 grey that ours fills RandAugment and Cutout with
SOLARIZE_THRESHOLD = 128  # uint8 equivalent of ViewPipeline's 0.5 on the 0..1 scale
# every ViewSpec field torchvision_pipeline reproduces (size_ratio is already in size)
MAPPED_FIELDS = {
    "size",
    "size_ratio",
    "crop",
    "scale",
    "ratio",
    "padding",
    "crop_fraction",
    "hflip_p",
    "vflip_p",
    "jitter_p",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "grayscale_p",
    "blur_p",
    "blur_sigma",
    "solarize_p",
    "randaugment_ops",
    "randaugment_magnitude",
    "randaugment_random_magnitude",
    "randaugment_exclude",
    "cutout_p",
    "cutout_size",
    "style_standardization",
}


def _crop(spec: ViewSpec, antialias: bool) -> list[Callable]:
    """ViewPipeline's crop modes: bilinear resampling throughout."""
    bilinear = v2.InterpolationMode.BILINEAR
    if spec.crop == "resized":
        crop = v2.RandomResizedCrop(
            spec.size, spec.scale, spec.ratio, interpolation=bilinear, antialias=antialias
        )
        return [crop]
    if spec.crop == "center":
        full = round(spec.size / spec.crop_fraction)
        return [v2.Resize((full, full), bilinear, antialias=True), v2.CenterCrop(spec.size)]
    if spec.crop == "pad":
        resize = v2.Resize((spec.size, spec.size), bilinear, antialias=True)
        padding = round(spec.padding * spec.size)
        return [resize, v2.RandomCrop(spec.size, padding=padding, padding_mode="reflect")]
    raise ConfigError(f"torchvision_pipeline cannot map crop={spec.crop!r}: add it to _crop")


def _randaugment_and_cutout(spec: ViewSpec) -> list[Callable]:
    """RandAugment at the spec's magnitude (torchvision has no per-sample random magnitude, the
    ops and their cost are the same) and Cutout as a square RandomErasing, both filling grey."""
    steps: list[Callable] = []
    if spec.randaugment_ops > 0:
        magnitude = round(spec.randaugment_magnitude)
        steps.append(v2.RandAugment(spec.randaugment_ops, magnitude, fill=FILL))
    if spec.cutout_p > 0:
        area = spec.cutout_size**2
        erase = v2.RandomErasing(spec.cutout_p, scale=(area, area), ratio=(1, 1), value=FILL)
        steps.append(erase)
    return steps


def torchvision_pipeline(
    spec: ViewSpec, mean: Sequence[float], std: Sequence[float], *, antialias: bool = True
) -> v2.Compose:
    """The torchvision v2 per-sample equivalent of one ViewSpec, for uint8 ``[C, H, W]`` tensors.

    Same order as ``ViewPipeline``: crop (``RandomResizedCrop`` bilinear; ``antialias=True`` is
    torchvision's default and its fast uint8 path, ours does not antialias), flips, colour jitter,
    grayscale, blur, solarize, RandAugment, Cutout, then ToDtype + Normalize; steps that are off
    are left out, as ViewPipeline skips them. Raises ConfigError for a ViewSpec field (or value)
    it cannot map, so no augmentation is silently left out of the baseline.
    """
    unmapped = [f.name for f in fields(spec) if f.name not in MAPPED_FIELDS]
    if getattr(spec, "style_standardization", False):
        unmapped.append("style_standardization=True (a whole-batch op, no per-sample equivalent)")
    if getattr(spec, "randaugment_exclude", ()):
        unmapped.append("randaugment_exclude (v2.RandAugment draws from its whole op table)")
    if unmapped:
        raise ConfigError(
            f"torchvision_pipeline cannot map ViewSpec field(s) {', '.join(unmapped)}: add the "
            "torchvision v2 equivalent in bench/augment.py (and to MAPPED_FIELDS)"
        )
    steps = _crop(spec, antialias)
    if spec.hflip_p > 0:
        steps.append(v2.RandomHorizontalFlip(spec.hflip_p))
    if spec.vflip_p > 0:
        steps.append(v2.RandomVerticalFlip(spec.vflip_p))
    if spec.jitter_p > 0:
        jitter = v2.ColorJitter(spec.brightness, spec.contrast, spec.saturation, spec.hue)
        steps.append(v2.RandomApply([jitter], p=spec.jitter_p))
    if spec.grayscale_p > 0:
        steps.append(v2.RandomGrayscale(spec.grayscale_p))
    if spec.blur_p > 0:
        blur = v2.GaussianBlur(default_blur_kernel_size(spec.size, spec.size), spec.blur_sigma)
        steps.append(v2.RandomApply([blur], p=spec.blur_p))
    if spec.solarize_p > 0:
        steps.append(v2.RandomSolarize(SOLARIZE_THRESHOLD, p=spec.solarize_p))
    steps += _randaugment_and_cutout(spec)
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def source_images(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, str]:
    """``uint8 [count, 3, size, size]``: CIFAR-10 test images (bilinear upsampled) when the data
    root holds them, else uniform random pixels."""
    path = data_root() / "cifar10_jpeg" / "cifar10_test_uint8.npz"
    if path.exists():
        pixels = np.load(path)["x_test"][:count]
        images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
        source = "cifar10-test"
        if size != images.shape[-1]:
            resized = F.interpolate(images.float(), size=(size, size), mode="bilinear")
            images = resized.round().clamp(0, 255).to(torch.uint8)
            source += f" upsampled 32->{size}"
        return images, source
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, size, size), generator=generator)
    return images.to(torch.uint8), "synthetic uniform uint8"


def _timed(
    run: Callable[[], object], threads: int, sync: Callable[[], None], batches: int = 1
) -> float:
    """Seconds per batch over ``batches`` consecutive calls."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    for _ in range(batches):
        run()
    sync()
    return (time.perf_counter() - start) / batches


def median_seconds(
    run_ours: Callable[[], object], run_theirs: Callable[[], object], args: argparse.Namespace
) -> tuple[float, float]:
    """Median seconds per batch of each, timed alternately so that load hits both alike.

    Each of our repeats times ``args.ours_batches`` consecutive batches: our 2-thread call right
    after the 1-thread loop first waits for the idle second vCPU (the VM parks it), a cost that
    steady training (2 threads busy all along) never pays and that a 2 ms batch at 32 px cannot
    hide. The loop (tens of ms to seconds a batch) is timed one batch a repeat."""
    sync = torch.cuda.synchronize if torch.device(args.device).type == "cuda" else lambda: None
    ours, theirs = [], []
    for repeat in range(args.warmup + args.repeats):
        ours_s = _timed(run_ours, args.threads, sync, args.ours_batches)
        theirs_s = _timed(run_theirs, 1, lambda: None)
        if repeat >= args.warmup:
            ours.append(ours_s)
            theirs.append(theirs_s)
    torch.set_num_threads(args.threads)
    return statistics.median(ours), statistics.median(theirs)


def measure(recipe: str, size: int, args: argparse.Namespace) -> dict:
    """One result line: median images/s of ours and of the torchvision loop on the same batch."""
    batch = BATCH[size]
    images, source = source_images(batch, size)
    stats = channel_stats(images.numpy())
    ours = view_recipe(recipe, size=size, mean=stats["mean"], std=stats["std"])
    theirs = [
        torchvision_pipeline(s, ours.mean, ours.std, antialias=args.tv_antialias)
        for s in ours.specs
    ]
    on_device = images.to(args.device)
    generator = torch.Generator(on_device.device).manual_seed(0)
    torch.manual_seed(0)  # torchvision draws from the global generator

    def run_theirs():
        per_sample = [[pipe(image) for pipe in theirs] for image in images]
        return [torch.stack(view) for view in zip(*per_sample, strict=True)]

    ours_s, loop_s = median_seconds(lambda: ours(on_device, generator=generator), run_theirs, args)
    ours_rate, loop_rate = batch / ours_s, batch / loop_s
    tv_rate = loop_rate * args.threads
    return {
        **environment(),
        "recipe": recipe,
        "size": size,
        "batch": batch,
        "views": ours.num_views,
        "source": source,
        "device": str(on_device.device),
        "ours_images_per_s": round(ours_rate, 1),
        "torchvision_images_per_s": round(tv_rate, 1),
        "torchvision_loop_images_per_s": round(loop_rate, 1),
        "speedup": round(ours_rate / tv_rate, 2),
        "threads": args.threads,
        "torchvision_threads": 1,
        "repeats": args.repeats,
        "ours_batches_per_repeat": args.ours_batches,
        "warmup": args.warmup,
        "tv_antialias": args.tv_antialias,
        "malloc_tuned": getattr(args, "malloc_tuned", False),
        "torchvision": torchvision.__version__,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other processes on the cores
        "quick": args.quick,
        "protocol": (
            "source images/s through all views, median of repeats after warm-up; torchvision: "
            "per-sample v2 Compose on uint8 tensors + stack per view, 1 thread, x threads "
            "(ideal workers)"
        ),
    }


def markdown_table(records: Sequence[dict]) -> str:
    header = (
        "| recipe | size | batch | views | ours img/s | torchvision img/s | speedup |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    rows = [
        f"| {r['recipe']} | {r['size']} | {r['batch']} | {r['views']} | "
        f"{r['ours_images_per_s']:.0f} | {r['torchvision_images_per_s']:.0f} | "
        f"{r['speedup']:.1f}x |"
        for r in records
    ]
    return "\n".join([header, *rows])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=None, help="default: all RECIPES")
    parser.add_argument("--sizes", nargs="+", type=int, default=None, choices=SIZES)
    parser.add_argument("--repeats", type=int, default=None, help="timed batches (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    parser.add_argument(
        "--ours-batches",
        type=int,
        default=4,
        help="consecutive batches of ours per timed repeat (1: the earlier protocol)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for ours")
    parser.add_argument("--device", default="cpu", help="device for ours (torchvision: CPU)")
    parser.add_argument(
        "--tv-antialias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torchvision RandomResizedCrop antialias (its default and fast uint8 path)",
    )
    parser.add_argument(
        "--tune-malloc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="labelless.runtime.tune_allocator() for the process (both pipelines), as training",
    )
    parser.add_argument("--quick", action="store_true", help="32 px only, 3 repeats, 1 warm-up")
    parser.add_argument("--no-save", action="store_true", help="do not append to results")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or [32]
        args.repeats = args.repeats or 3
        args.warmup = min(args.warmup, 1)
    args.sizes = args.sizes or list(SIZES)
    args.repeats = args.repeats or 7
    args.recipes = args.recipes or list(RECIPES)
    return args


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    args.malloc_tuned = tune_allocator() if args.tune_malloc else False
    records = []
    for recipe in args.recipes:
        for size in args.sizes:
            record = measure(recipe, size, args)
            records.append(record)
            print(
                f"{recipe} @ {size}px: ours {record['ours_images_per_s']:.0f} img/s, "
                f"torchvision {record['torchvision_images_per_s']:.0f} img/s",
                flush=True,
            )
            if not args.no_save:
                append_result("augment", record)
    print()
    print(markdown_table(records))
    return records


if __name__ == "__main__":
    main()
