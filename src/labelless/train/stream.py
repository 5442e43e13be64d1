"""The training loader of a ``stream:`` run, made in Lightning's loader hook.

litdata's dataset reads the process group (rank, world size) when it is made; the group exists
only once ``trainer.fit`` has set up the strategy, so the loader is built in
``train_dataloader``, not when the run is planned. Lightning keeps the loader's ``state_dict``
(epoch, samples yielded) in every checkpoint and hands it back on resume.
"""

from __future__ import annotations

import lightning as L

from labelless.data.stream import stream_loader


class StreamData(L.LightningDataModule):
    """Batches of ``batch_size`` samples per process from the shard set ``name``
    (``stream:LOCATION``), read by ``workers`` processes, reshuffled each epoch from ``seed``."""

    def __init__(self, name: str, batch_size: int, *, seed: int = 0, workers: int = 0) -> None:
        super().__init__()
        self.name, self.batch_size, self.seed, self.workers = name, batch_size, seed, workers

    def train_dataloader(self):
        return stream_loader(self.name, self.batch_size, seed=self.seed, workers=self.workers)
