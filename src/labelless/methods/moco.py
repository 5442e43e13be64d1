"""MoCo v2: He, Fan, Wu, Xie, Girshick. "Momentum Contrast for Unsupervised Visual Representation
Learning", CVPR 2020; Chen, Fan, Girshick, He. "Improved Baselines with Momentum Contrastive
Learning", arXiv:2003.04297 (MLP head, blur, T=0.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelless.methods.base import Method, check_positive_options, register_method
from labelless.methods.queue import EmbeddingQueue
from labelless.nn.distributed import shuffle_across_processes, unshuffle_across_processes
from labelless.nn.ema import EMA
from labelless.nn.heads import mlp


def queue_info_nce(
    queries: torch.Tensor, keys: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo's InfoNCE (He et al. 2020, eq. 1): for each query, cross-entropy of its own key among
    ``[key, *negatives]`` at ``temperature``. ``queries, keys: [B, D]`` (keys without gradient),
    ``negatives: [K, D]``; all L2-normalised here."""
    queries = F.normalize(queries, dim=1)
    keys = F.normalize(keys.detach(), dim=1)
    negatives = F.normalize(negatives.detach(), dim=1)
    positive = (queries * keys).sum(dim=1, keepdim=True)  # [B, 1]
    logits = torch.cat([positive, queries @ negatives.T], dim=1) / temperature  # [B, 1 + K]
    return F.cross_entropy(
        logits, torch.zeros(len(queries), dtype=torch.long, device=logits.device)
    )


@register_method("moco_v2")
class MoCoV2(Method):
    """A query encoder contrasts each query with the key of another view, produced by a momentum
    (EMA) key encoder, against a queue of keys from earlier batches.

    ``shuffle_bn`` (on, as in the reference code): shuffling BN (He et al. 2020, sec. 3.3). With
    BatchNorm per process, a query and its key would be normalised with the statistics of the
    same sub-batch, a signature that lets the model find its positive without learning a good
    representation. The key encoder's batch is shuffled across processes before its forward and
    unshuffled after (``nn.distributed.shuffle_across_processes``), so each process's key
    BatchNorm sees a random share of the global batch, not the samples its queries see. On one
    process it does nothing: the reference code runs only under DDP, and a permutation within
    one BatchNorm batch leaves its statistics unchanged. With ``trainer.sync_batchnorm`` (GPUs)
    every BatchNorm sees the global batch and the shuffle changes nothing either.
    """

    default_views = "moco"
    summary = "contrastive: EMA key encoder + queue of negatives, independent of batch (He 2020)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        temperature: float = 0.2,
        momentum: float = 0.999,
        queue_size: int = 65536,
        symmetric: bool = False,
        shuffle_bn: bool = True,
    ) -> None:
        super().__init__(backbone)
        check_positive_options("method.kwargs", type(self), temperature=temperature)
        # MoCo v2's head: a 2-layer MLP without BatchNorm (Chen et al. 2020, sec. 2).
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_dim], norm="none")
        self.key_encoder = EMA(self._online(), momentum)  # constant momentum (sec. 3.2)
        self.queue = EmbeddingQueue(queue_size, proj_dim)
        self.temperature = temperature
        self.symmetric = symmetric
        self.shuffle_bn = shuffle_bn

    def forward(self, views, batch, *, generator=None):
        v0, v1 = views[:2]
        features0 = self.backbone(v0)
        q0 = self.projector(features0)
        with torch.no_grad():
            k1 = self.keys(v1, generator)
        negatives = self.queue.filled()
        loss = queue_info_nce(q0, k1, negatives, self.temperature)
        keys = [k1]
        if self.symmetric:  # both views as queries, as in the official code's "symmetric" option
            q1 = self.projector(self.backbone(v1))
            with torch.no_grad():
                k0 = self.keys(v0, generator)
            loss = (loss + queue_info_nce(q1, k0, negatives, self.temperature)) / 2
            keys.append(k0)
        if self.training:  # enqueue after the loss has read the queue: no key is its own negative
            for key in keys:
                self.queue.push(F.normalize(key, dim=1))
        return {"loss": loss, "embedding": features0.detach()}

    @torch.no_grad()
    def keys(self, view: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The key encoder's output for ``view [B, ...]``, row ``i`` for sample ``i``; with
        ``shuffle_bn`` under several processes its BatchNorm saw a shuffled share of the global
        batch (the permutation drawn from ``generator``)."""
        if not self.shuffle_bn:
            return self.key_encoder(view)
        shuffled, unshuffle = shuffle_across_processes(view, generator)
        return unshuffle_across_processes(self.key_encoder(shuffled), unshuffle)

    def on_step_end(self, progress: float) -> None:
        self.key_encoder.step(self._online(), progress)

    def _online(self) -> nn.Module:
        return nn.Sequential(self.backbone, self.projector)
