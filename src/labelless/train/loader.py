"""Batches straight from memory (uint8 images, float tables or series): one fancy-index per batch,
no per-sample Python, in an order that a resumed run continues exactly.

The order of epoch ``e`` depends only on ``(seed, e)``, never on how many epochs this process has
run, and the loader's position (epoch, batches done) travels in the checkpoint through
Lightning's stateful-loader interface (``state_dict`` / ``load_state_dict``): a run killed in
the middle of an epoch and resumed sees the rest of that epoch's batches, then the next epochs,
exactly as the uninterrupted run did.

Dynamic curation (``train/curation.py``) may give the in-memory batches per-sample weights
(``ShuffledBatches.set_weights``): an epoch is then a weighted draw with replacement, a function
of ``(seed, epoch, weights)``; without weights the seeded permutation is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch

from labelless.data import Dataset


class BatchSource(Protocol):
    """What an ``EpochLoader`` reads: ``num_batches`` per epoch over all processes, and batch
    ``index`` of epoch ``epoch`` as a dict of tensors with an ``"index"`` entry."""

    num_batches: int

    def batch(self, epoch: int, index: int) -> dict[str, Any]: ...


class ShuffledBatches:
    """Batches of ``batch_size`` rows of ``dataset`` in a fresh permutation per epoch (the last
    incomplete batch dropped): ``{"inputs": samples [B, ...], "index": [B], "label": [B]}``.

    Epoch ``e``'s permutation is the one a shuffled ``torch.utils.data.DataLoader`` with a
    generator seeded by ``seed`` gives in its epoch ``e`` (per epoch it draws the iterator's base
    seed, then one ``randperm``), replayed from the seed: the same training order as the
    loader it replaced, and a function of ``(seed, e)`` only. Moving forward one epoch costs one
    ``randperm``; a resumed run replays the epochs before it once.

    With sampling weights (``set_weights``; dynamic curation sets them) an epoch's order is
    instead ``num_batches * batch_size`` rows drawn with replacement, row ``i`` with probability
    ``w_i / sum(w)``, from a generator seeded by ``(seed, e)`` alone (``weighted_order``): a
    function of ``(seed, e, weights)``, so a resumed run holding the same weights replays it.
    With replacement, because an epoch keeps its length (schedules, checkpoints and the steps of
    every process count on it): a draw without replacement as long as the data takes every row
    once and gives the imbalance back. Every row of positive weight stays reachable.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0) -> None:
        self.samples = torch.from_numpy(np.ascontiguousarray(dataset.samples))
        labels = dataset.labels if dataset.labels is not None else np.full(len(dataset), -1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.batch_size = int(batch_size)
        self.num_batches = len(self.samples) // self.batch_size
        self.seed = int(seed)
        self._stream: torch.Generator | None = None
        self._epoch = -1  # the epoch whose permutation is ``_order``
        self._order = torch.empty(0, dtype=torch.long)
        self.weights: torch.Tensor | None = None  # float64 [N]; None: the seeded permutation
        self._drawn: tuple[int, torch.Tensor] | None = None  # (epoch, weighted order)

    def set_weights(self, weights: torch.Tensor | None) -> None:
        """Per-row sampling weights (``[N]``, finite, >= 0, positive sum) for the orders made
        from now on; None returns to the seeded permutation."""
        self._drawn = None
        if weights is None:
            self.weights = None
            return
        weights = torch.as_tensor(weights, dtype=torch.float64).flatten().cpu()
        if len(weights) != len(self.samples):
            raise ValueError(f"{len(weights)} weights for {len(self.samples)} samples")
        if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("sampling weights must be finite, >= 0 and not all 0")
        self.weights = weights

    def _weighted(self, epoch: int) -> torch.Tensor:
        if self._drawn is None or self._drawn[0] != epoch:
            rows = self.num_batches * self.batch_size
            self._drawn = (epoch, weighted_order(self.weights, rows, self.seed, epoch))
        return self._drawn[1]

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._stream is None or epoch < self._epoch:
            self._stream, self._epoch = torch.Generator().manual_seed(self.seed), -1
        while self._epoch < epoch:
            torch.empty((), dtype=torch.int64).random_(generator=self._stream)  # base seed
            self._order = torch.randperm(len(self.samples), generator=self._stream)
            self._epoch += 1
        return self._order

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:
        epoch = int(epoch)
        order = self._permutation(epoch) if self.weights is None else self._weighted(epoch)
        rows = order[index * self.batch_size : (index + 1) * self.batch_size]
        return {"inputs": self.samples[rows], "index": rows, "label": self.labels[rows]}


def epoch_seed(seed: int, epoch: int, purpose: int = 0) -> int:
    """A 63-bit generator seed that depends only on ``(seed, epoch, purpose)`` (numpy's
    ``SeedSequence`` mixes them, so neighbouring epochs get unrelated streams)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(purpose)]).generate_state(2)
    return int(state[0]) << 31 ^ int(state[1])


def weighted_order(weights: torch.Tensor, rows: int, seed: int, epoch: int) -> torch.Tensor:
    """``rows`` row indices (int64) drawn with replacement, index ``i`` with probability
    ``weights[i] / sum(weights)`` (inverse CDF over float64 cumulative weights: no limit on
    the number of rows, unlike ``torch.multinomial``), from a generator seeded by ``(seed,
    epoch)`` only; a row of weight 0 is never drawn."""
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    cumulative = torch.cumsum(weights, 0)
    draws = torch.rand(rows, generator=generator, dtype=torch.float64) * cumulative[-1]
    last = int(torch.nonzero(weights).max())  # rounding at the top end lands on a weighted row
    return torch.searchsorted(cumulative, draws, right=True).clamp_(max=last)


def _world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochLoader:
    """An iterable of ``source``'s batches that Lightning treats as a stateful, sized loader.

    Under data parallelism process ``r`` of ``W`` takes batches ``r, r + W, ...`` of each epoch
    (each process its own samples; the remainder dropped so every process steps equally). Step
    ``s`` thus reads rows ``s*W*B .. (s+1)*W*B`` of the epoch's order on any ``W`` processes of
    ``B`` rows each: a run resumed on another number of processes at the same global batch
    ``W*B`` continues with the very rows the uninterrupted run would have read (the global
    batch is checked on resume: ``lifecycle.check_step_shape``). The
    fit loop calls ``sampler.set_epoch(e)`` at each epoch start (``sampler`` is the loader
    itself); ``state_dict`` records the epoch and the batches completed, updated as each batch
    is handed out (Lightning does not prefetch from a sized loader), so a checkpoint written
    after a step resumes at the next batch.
    """

    def __init__(self, source: BatchSource) -> None:
        self.source = source
        self._epoch = 0
        self._done = (
            0  # batches of this epoch handed out (and trained on when a checkpoint reads it)
        )
        self._skip = 0  # batches to skip at the next iteration (a resumed epoch)

    @property
    def sampler(self) -> EpochLoader:
        return self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch, self._skip = int(epoch), 0

    def __len__(self) -> int:
        return self.source.num_batches // _world()[1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _world()
        epoch, start = self._epoch, self._skip
        self._skip = 0
        for step in range(start, self.source.num_batches // world):
            self._done = step + 1
            yield self.source.batch(epoch, step * world + rank)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches_done": self._done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._epoch = int(state["epoch"])
        self._done = self._skip = int(state["batches_done"])


def train_loader(dataset: Dataset, batch_size: int, *, seed: int = 0) -> EpochLoader:
    """Shuffled, resumable loader over an in-memory dataset; the last incomplete batch is
    dropped. The batch size is capped at the dataset size so that tiny datasets still train.
    Data whose samples are not array rows brings its own batches (``SampleFormat.batches``: a
    whole graph per step, collated graph sets)."""
    own = dataset.format.batches
    if own is not None:
        return EpochLoader(own(dataset, batch_size, seed))
    return EpochLoader(ShuffledBatches(dataset, min(batch_size, len(dataset)), seed=seed))
