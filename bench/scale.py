"""Streaming at scale: shard sets read from local disk and from a simulated object store, the
measured samples/s next to a cost model's prediction, and the model's extrapolation to
ImageNet-1k and a 100M-image pretraining (``docs/scaling.md``).

Steps (CIFAR-10's 50 000 training images from ``$LABELLESS_DATA``; run alone on the machine):

1. ``labelless convert`` to uint8 and to JPEG shards: seconds, bytes per sample.
2. One epoch of ``stream_loader`` (batch 256, the loader alone, no model) for each encoding,
   store (local disk; ``slow``: litdata's ``local:`` store, read through its downloader and
   cache like a remote one, behind an added per-request latency and a bandwidth cap) and
   reading processes (0 = in the training process, 2 workers); the in-memory loader as the
   reference.
3. The cost model, fitted on the local runs only: with ``P`` reading processes a sample costs
   ``1 / local_rate(P)`` (decode, collate, hand-over: the measured local-disk rate); a chunk of
   ``n`` samples costs ``latency + n * bytes / bandwidth`` to fetch (``bandwidth`` per request:
   the simulated store has no aggregate cap), with litdata fetching ``2`` chunks ahead per
   reading process. Predicted rate = 1 / (1 / local_rate(P) + fetch / (2 * max(P, 1) * n)):
   reading and fetching are assumed not to overlap, a conservative bound.

    LABELLESS_DATA=../shared/data .venv/bin/python bench/scale.py [--latency-ms 40]
        [--bandwidth-mb 50] [--chunk-size 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_result, data_available, environment

from labelless import api
from labelless.data import load_dataset
from labelless.data.stream import stream_loader
from labelless.train.loader import train_loader

PREFETCH = 2  # chunks litdata downloads ahead per reading process (max_pre_download)
# Images/s one GPU trains on in a two-view ResNet-50 SSL step at 224 px (an assumption of the
# paper estimate, of the order the SSL libraries report for an A100; not measured here).
GPU_RATE = 1200


def _jpeg_224_seconds(images, repeats: int = 200) -> float:
    """Seconds to decode one 224-px JPEG (quality 90) with PIL on this machine, measured on
    CIFAR-10 images upscaled to 224 px."""
    import io

    from PIL import Image

    encoded = []
    for image in images[:repeats]:
        pixels = Image.fromarray(image.transpose(1, 2, 0)).resize((224, 224), Image.BILINEAR)
        stream = io.BytesIO()
        pixels.save(stream, format="JPEG", quality=90)
        encoded.append(stream.getvalue())
    start = time.perf_counter()
    for data in encoded:
        Image.open(io.BytesIO(data)).convert("RGB").load()
    return (time.perf_counter() - start) / len(encoded)


def _slow_store(latency: float, bandwidth: float) -> None:
    """Make litdata's ``local:PATH`` store (read through its downloader and cache, as a remote
    store is) wait ``latency`` seconds per request plus the bytes over ``bandwidth`` bytes/s: a
    simulated object store."""
    from litdata.streaming.downloader import LocalDownloader, register_downloader

    def wait(size: int) -> float:
        return latency + size / bandwidth

    class SlowStore(LocalDownloader):
        def download_file(self, remote_filepath: str, local_filepath: str) -> None:
            path = remote_filepath.replace("local:", "", 1)
            time.sleep(wait(os.path.getsize(path)))
            super().download_file(path, local_filepath)

        async def adownload_file(self, remote_filepath: str, local_filepath: str) -> None:
            path = remote_filepath.replace("local:", "", 1)
            if not os.path.exists(local_filepath):
                await asyncio.sleep(wait(os.path.getsize(path)))
            await super().adownload_file(path, local_filepath)

        async def adownload_bytes(self, remote_filepath, offset, length, local_chunkpath):
            await asyncio.sleep(wait(length))
            path = remote_filepath.replace("local:", "", 1)
            return await super().adownload_bytes(path, offset, length, local_chunkpath)

        async def adownload_fileobj(self, remote_filepath: str) -> bytes:
            path = remote_filepath.replace("local:", "", 1)
            await asyncio.sleep(wait(os.path.getsize(path)))
            return await super().adownload_fileobj(path)

    register_downloader("local:", SlowStore, overwrite=True)


def _epoch_rate(loader) -> tuple[float, int, float]:
    """(samples/s over one epoch after the first batch, samples, seconds to the first batch)."""
    start = time.perf_counter()
    batches = iter(loader)
    first = next(batches)
    ready = time.perf_counter()
    count = 0
    for batch in batches:
        count += len(batch["index"])
    elapsed = time.perf_counter() - ready
    del first
    return count / elapsed, count, ready - start


def _predict(local_rate, processes, bytes_per_sample, chunk, latency, bandwidth) -> float:
    """Samples/s from a remote store: the local per-sample cost plus each sample's share of its
    chunk's fetch time, spread over the chunks in flight (no overlap assumed)."""
    fetch_chunk = latency + chunk * bytes_per_sample / bandwidth
    return 1.0 / (1.0 / local_rate + fetch_chunk / (PREFETCH * max(processes, 1) * chunk))


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _extrapolate(model: dict) -> list[dict]:
    """Paper numbers from the fitted model: data rate a GPU needs vs what a node streams, and
    the kNN cost exact vs IVF. Assumptions are in the rows."""
    rows = []
    for name, images, kb in (
        ("ImageNet-1k", 1_281_167, 110.0),
        ("100M images", 100_000_000, 110.0),
    ):
        for gpus, per_gpu in ((8, GPU_RATE), (64, GPU_RATE), (512, GPU_RATE)):
            need = gpus * per_gpu  # images/s the GPUs consume
            gbit = need * kb * 1e3 * 8 / 1e9
            cores = need * model["t_read_jpeg_224_s"]  # decode cores needed at 224 px
            rows.append(
                {
                    "data": name,
                    "gpus": gpus,
                    "images_per_s": need,
                    "epoch_minutes": round(images / need / 60, 1),
                    "stream_gbit_s": round(gbit, 1),
                    "decode_cores": round(cores, 1),
                }
            )
    for rows_count in (1_281_167, 100_000_000):
        dim, queries = 768, 50_000
        exact = 2 * rows_count * queries * dim
        lists = int(4 * rows_count**0.5)
        probe = 32
        ivf = 2 * queries * dim * (lists + probe * rows_count / lists)
        rows.append(
            {
                "knn_rows": rows_count,
                "queries": queries,
                "exact_tflop": round(exact / 1e12, 1),
                "ivf_lists": lists,
                "ivf_probe": probe,
                "ivf_tflop": round(ivf / 1e12, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument(
        "--bandwidth-mb", type=float, default=50.0, help="MB/s per request of the simulated store"
    )
    parser.add_argument("--workers", default="0,2")
    args = parser.parse_args()
    if args.data != "digits" and not data_available():
        sys.exit("needs LABELLESS_DATA (the real datasets); see ../shared/data/README.md")
    torch.set_num_threads(2)
    env = environment()
    latency, bandwidth = args.latency_ms / 1e3, args.bandwidth_mb * 1e6
    _slow_store(latency, bandwidth)
    workers = [int(w) for w in args.workers.split(",")]
    root = Path(tempfile.mkdtemp(prefix="labelless-scale-"))
    results: list[dict] = []
    try:
        train = load_dataset(args.data).train
        jpeg_224 = _jpeg_224_seconds(train.samples) if train.in_channels == 3 else float("nan")
        memory = train_loader(train, args.batch_size, seed=0)
        rate, count, first = _epoch_rate(memory)
        results.append({"store": "memory", "encoding": "-", "workers": 0, "samples_per_s": rate})
        t_read: dict[str, float] = {}
        local: dict[tuple[str, int], float] = {}
        for encoding in ("uint8", "jpeg"):
            out = root / encoding
            start = time.perf_counter()
            header = api.convert(args.data, out, encoding=encoding, chunk_size=args.chunk_size)
            seconds = time.perf_counter() - start
            per_sample = _folder_bytes(out) / header["count"]
            results.append(
                {
                    "step": "convert",
                    "encoding": encoding,
                    "samples": header["count"],
                    "seconds": round(seconds, 2),
                    "samples_per_s": round(header["count"] / seconds, 1),
                    "bytes_per_sample": round(per_sample, 1),
                }
            )
            for store in ("local", "slow"):
                where = f"stream:{out}" if store == "local" else f"stream:local:{out}"
                for processes in workers:
                    cache = root / f"cache-{encoding}-{store}-{processes}"
                    os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = str(cache)
                    loader = stream_loader(where, args.batch_size, seed=0, workers=processes)
                    rate, count, first = _epoch_rate(loader)
                    if store == "local":
                        local[(encoding, processes)] = rate
                        if processes == 0:
                            t_read[encoding] = 1.0 / rate
                    predicted = _predict(
                        local[(encoding, processes)],
                        processes,
                        per_sample,
                        args.chunk_size,
                        latency,
                        bandwidth,
                    )
                    results.append(
                        {
                            "store": store,
                            "encoding": encoding,
                            "workers": processes,
                            "samples": count,
                            "first_batch_s": round(first, 2),
                            "samples_per_s": round(rate, 1),
                            "predicted_samples_per_s": round(predicted, 1)
                            if store == "slow"
                            else None,
                        }
                    )
                    print(results[-1], flush=True)
                    shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    model = {
        "t_read_uint8_s": t_read["uint8"],
        "t_read_jpeg_s": t_read["jpeg"],
        "t_read_jpeg_224_s": jpeg_224,
        "gpu_images_per_s_assumed": GPU_RATE,
        "prefetch_chunks_per_process": PREFETCH,
        "latency_s": latency,
        "bandwidth_bytes_s": bandwidth,
    }
    record = {
        **env,
        "data": args.data,
        "chunk_size": args.chunk_size,
        "batch_size": args.batch_size,
        "runs": results,
        "model": model,
        "extrapolation": _extrapolate(model),
    }
    path = append_result("scale", record)
    for row in results + record["extrapolation"]:
        print(row)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
