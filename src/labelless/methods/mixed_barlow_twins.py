"""Mixed Barlow Twins: Bandara, De Melo, Patel. "Guarding Barlow Twins Against Overfitting with
Mixed Samples", arXiv:2312.02151, 2023."""

from __future__ import annotations

from torch import nn

from labelless.errors import ConfigError
from labelless.methods.base import Method, register_method
from labelless.nn import sampling
from labelless.nn.heads import mlp
from labelless.nn.losses import barlow_twins, mixed_barlow_twins


@register_method("mixed_barlow_twins")
class MixedBarlowTwins(Method):
    """Barlow Twins plus a mixup regulariser: the embedding of ``mix * x0 + (1 - mix) * x1[perm]``
    must correlate with each view as the same mixture of the views' embeddings would.

    ``mix ~ Beta(mix_alpha, mix_alpha)`` once per batch and ``perm`` a random permutation of the
    batch (sec. 3), both drawn from the step's ``generator``. Each view goes through the
    backbone on its own, as in Barlow Twins. The regulariser is weighted by
    ``reg_weight * lambd`` (the paper's ``lambda_reg * lambda_BT``); ``reg_weight = 4`` is the
    authors' CIFAR-10 / ResNet-18 setting.
    """

    default_views = "barlow_twins"
    summary = "redundancy reduction + mixup regulariser against overfitting (Bandara 2023)"

    def __init__(
        self,
        backbone: nn.Module,
        *,
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
        lambd: float = 5e-3,
        reg_weight: float = 4.0,
        mix_alpha: float = 1.0,
    ) -> None:
        super().__init__(backbone)
        if mix_alpha <= 0:
            raise ConfigError(f"mix_alpha must be positive, got {mix_alpha}; the paper uses 1.0")
        self.projector = mlp([self.embed_dim, proj_hidden_dim, proj_hidden_dim, proj_dim])
        self.lambd = lambd
        self.reg_weight = reg_weight
        self.mix_alpha = mix_alpha

    def forward(self, views, batch, *, generator=None):
        v0, v1 = views[:2]
        features0 = self.backbone(v0)
        z0, z1 = self.projector(features0), self.projector(self.backbone(v1))
        loss = barlow_twins(z0, z1, lambd=self.lambd)
        out = {"embedding": features0.detach(), "bt_loss": loss.detach()}
        if self.reg_weight > 0:
            mix = sampling.beta(self.mix_alpha, generator)
            permutation = sampling.randperm(len(v0), generator=generator, device=v0.device)
            mixed = mix * v0 + (1 - mix) * v1[permutation]
            z_mixed = self.projector(self.backbone(mixed))
            regulariser = mixed_barlow_twins(z_mixed, z0, z1, permutation, mix)
            loss = loss + self.reg_weight * self.lambd * regulariser
            out["mix_loss"] = regulariser.detach()
        out["loss"] = loss
        return out
