"""Dynamic curation during pretraining: every few epochs the current encoder's embeddings of the
training data are clustered and sampling is re-weighted so that every cluster gets an equal
share of the next epochs' draws.

Kerdreux et al. 2025 ("Efficient Self-Supervised Learning for Earth Observation via Dynamic
Dataset Curation", CVPR workshops) train a warm-up, then at scheduled intervals cluster a
random subset of the data with the model being trained (hierarchical k-means) and continue on a
balanced sample of the clusters until the next resampling: no pre-existing feature extractor is
needed. The balanced sampling over k-means clusters is Vo et al. 2024 ("Automatic Data Curation
for Self-Supervised Learning: A Clustering-Based Approach", TMLR). Here the clustering is flat
k-means (``labelless.curate.kmeans``) of L2-normalised embeddings fitted on a seeded subset,
every training row is then assigned to its nearest centroid, and instead of pruning the data the
loader draws each epoch with replacement, row ``i`` with weight ``size(cluster_i) ** -strength``
(``train/loader.py``): at strength 1 each cluster's expected share of the draws is ``1 / K``, at
0 the data's own distribution. Epochs keep their length, so schedules and checkpoints are as
without curation.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from labelless.curate.kmeans import kmeans, nearest_centroid
from labelless.errors import CheckpointError, ConfigError
from labelless.evaluate import embed
from labelless.train.callbacks import budget_ended
from labelless.train.loader import ShuffledBatches, epoch_seed

SUBSET_SEED, KMEANS_SEED = 1, 2  # ``epoch_seed`` purposes


def balanced_weights(assignment: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Sampling weights ``float64 [N]`` of rows in clusters ``assignment [N]``: the row's
    cluster's ``size ** -strength``, so that cluster ``c`` gets the share
    ``size_c ** (1 - strength) / sum_k size_k ** (1 - strength)`` of the draws (equal at
    strength 1, proportional to size at 0)."""
    sizes = torch.bincount(assignment).double()
    return sizes[assignment].pow(-float(strength))


def expected_shares(assignment: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each cluster's expected share ``float64 [K]`` of the draws: rows drawn uniformly (no
    ``weights``) or with probability proportional to ``weights [N]``."""
    mass = torch.ones(len(assignment), dtype=torch.float64) if weights is None else weights.double()
    shares = torch.zeros(int(assignment.max()) + 1, dtype=torch.float64)
    shares.index_add_(0, assignment, mass)
    return shares / shares.sum()


def share_balance(shares: torch.Tensor) -> dict[str, float]:
    """``entropy`` of the shares over the non-empty clusters, normalised to [0, 1] (1: equal
    shares), and the ``largest_share``."""
    present = shares[shares > 0]
    entropy = 1.0
    if len(present) > 1:
        entropy = max(float(-(present * present.log()).sum()) / math.log(len(present)), 0.0)
    return {"entropy": entropy, "largest_share": float(shares.max())}


class DynamicCuration(L.Callback):
    """Re-weights the in-memory loader's sampling towards balance over clusters of the current
    encoder's embeddings, every ``every_n_epochs`` epochs (the first update after that many
    epochs of plain training, the warm-up; none at the run's last epoch or when its budget
    ends). The new weights take effect from the next epoch.

    An update embeds every training row (the eval transform at ``input_size`` / ``mean`` /
    ``std``, ``torch.inference_mode``, ``batch_size`` rows at a time: one forward pass over the
    data), fits k-means with ``clusters`` centres on a subset of ``sample`` rows drawn from
    ``(seed, epoch)``, assigns every row to its nearest centroid and sets the weights
    (``balanced_weights`` at ``strength``; at strength 0 the clusters are measured and logged
    but the loader keeps its permutation). Under data parallelism every process embeds
    (collectives of sharded models run everywhere) and rank 0's clusters are broadcast, so all
    processes sample with the same weights (BatchNorm statistics differ per process).

    Logged per update (``logs/metrics.csv``): ``curation/entropy_before`` / ``_after`` (the
    normalised entropy of the clusters' expected shares of the draws under uniform sampling and
    under the new weights) and ``curation/largest_share_before`` / ``_after``;
    ``training_record()`` gives the same per update for ``metrics.json``. The state (cluster of
    every row, centroids, the epoch of the last update, the history) travels in checkpoints and
    is applied to the loader again on load, so a resumed run samples exactly as the
    uninterrupted one.
    """

    def __init__(
        self,
        source: ShuffledBatches,
        *,
        input_size: int | None = None,
        mean=None,
        std=None,
        every_n_epochs: int = 5,
        clusters: int = 20,
        sample: int = 4096,
        strength: float = 1.0,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> None:
        if not isinstance(source, ShuffledBatches):
            raise ConfigError(
                "dynamic curation (curation.every_n_epochs) re-weights data held in memory: it "
                "does not work with stream: shard sets, data.lazy folders or graphs; unset "
                "curation.every_n_epochs or load the data into memory"
            )
        if clusters > min(sample, len(source.samples)):
            raise ConfigError(
                f"curation.clusters {clusters} exceeds the {min(sample, len(source.samples))} "
                "samples k-means is fitted on: lower curation.clusters or raise curation.sample"
            )
        if every_n_epochs < 1 or not 0 <= strength <= 1:
            raise ConfigError("curation.every_n_epochs must be >= 1 and strength in [0, 1]")
        self.source = source
        self.preprocess = {"input_size": input_size, "mean": mean, "std": std}
        self.every_n_epochs, self.clusters, self.sample = every_n_epochs, clusters, sample
        self.strength, self.seed, self.batch_size = float(strength), int(seed), batch_size
        self.assignment: torch.Tensor | None = None  # int64 [N], the cluster of every row
        self.centroids: torch.Tensor | None = None  # float32 [K, D]
        self.epoch: int | None = None  # the epoch whose end made the last update
        self.history: list[dict[str, Any]] = []

    def _due(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if last or trainer.should_stop or budget_ended(pl_module):
            return False  # no epoch follows to sample with the new weights
        return (epoch + 1) % self.every_n_epochs == 0

    def cluster(self, backbone: torch.nn.Module, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(assignment [N], centroids [K, D])`` of the training rows under ``backbone``."""
        z = embed(backbone, self.source.samples, batch_size=self.batch_size, **self.preprocess)
        z = F.normalize(z.float(), dim=1)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, SUBSET_SEED))
        rows = torch.randperm(len(z), generator=generator)[: self.sample].sort().values
        fit = kmeans(z[rows], self.clusters, seed=epoch_seed(self.seed, epoch, KMEANS_SEED))
        assignment, _ = nearest_centroid(z, fit.centroids)
        return assignment, fit.centroids

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._due(trainer, pl_module):
            return
        epoch = trainer.current_epoch
        clusters = self.cluster(pl_module.method.backbone, epoch)
        if trainer.world_size > 1:  # every process samples with rank 0's clusters
            clusters = trainer.strategy.broadcast(clusters, src=0)
        record = self.apply(*clusters, epoch)
        for key, value in record.items():
            if key not in ("epoch", "clusters"):
                pl_module.log(f"curation/{key}", value, on_epoch=True, rank_zero_only=True)

    def apply(self, assignment: torch.Tensor, centroids: torch.Tensor, epoch: int) -> dict:
        """Keep the clusters made at the end of ``epoch``, set the loader's weights, record the
        balance before and after; returns the record."""
        self.assignment, self.centroids, self.epoch = assignment.cpu(), centroids.cpu(), epoch
        weights = self._set_weights()
        before = share_balance(expected_shares(self.assignment))
        after = share_balance(expected_shares(self.assignment, weights))
        record = {
            "epoch": epoch,
            "clusters": int((torch.bincount(self.assignment) > 0).sum()),
            **{f"{key}_before": round(value, 6) for key, value in before.items()},
            **{f"{key}_after": round(value, 6) for key, value in after.items()},
        }
        self.history.append(record)
        return record

    def _set_weights(self) -> torch.Tensor | None:
        weights = None
        if self.assignment is not None and self.strength > 0:
            weights = balanced_weights(self.assignment, self.strength)
        self.source.set_weights(weights)
        return weights

    def training_record(self) -> dict[str, Any]:
        """Its entry in the run's ``training`` record (``metrics.json``)."""
        settings = {"every_n_epochs": self.every_n_epochs, "clusters": self.clusters}
        settings.update(sample=self.sample, strength=self.strength)
        return {"dynamic_curation": {**settings, "updates": list(self.history)}}

    def state_dict(self) -> dict[str, Any]:
        return {
            "assignment": self.assignment,
            "centroids": self.centroids,
            "epoch": self.epoch,
            "history": [dict(item) for item in self.history],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.assignment, self.centroids = state_dict["assignment"], state_dict["centroids"]
        self.epoch = state_dict["epoch"]
        self.history = [dict(item) for item in state_dict.get("history", [])]
        if self.assignment is not None and len(self.assignment) != len(self.source.samples):
            raise CheckpointError(
                f"the checkpoint's curation state covers {len(self.assignment)} samples, the "
                f"training data has {len(self.source.samples)}: resume on the run's own data"
            )
        self._set_weights()
