"""``dac``: open-set semi-supervised learning from the disagreement of diverse heads.

Kong et al. 2025, "Diversify and Conquer: Open-set Disagreement for Robust Semi-supervised
Learning with Outliers" (IEEE TNNLS; arXiv 2505.24443). Defaults follow the authors' code,
heejokong/DivCon ``semilearn/algorithms/dac/`` and its CIFAR-10 configs
(``config/openset_cv/dac/dac_cifar10_6_*.yaml``); docs/methods/dac.md lists what differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelless.errors import ConfigError
from labelless.methods.queue import EmbeddingQueue
from labelless.semi.algorithms.base import SemiAlgorithm, register_algorithm
from labelless.semi.losses import (
    check_threshold,
    confidence_mask,
    cross_entropy,
    head_agreement,
    pairwise_mutual_information,
)
from labelless.semi.saa import otsu_threshold

AGREEMENT, CONFIDENCE, SCORE = "dac_agreement", "dac_confidence", "open_score"


class MultiHeadNet(nn.Module):
    """DivCon's ``OSCNet``: LayerNorm on the backbone features, the main classifier on them, a
    projection MLP ``D -> D -> proj_dim``; ``num_heads`` linear heads on the projection of the
    *detached* features (the heads never train the backbone). ``forward`` returns ``(main
    [N, K], heads [N, H, K], projection [N, proj_dim] L2-normalised)``; the projection (with
    gradient) feeds the memory-bank distillation."""

    def __init__(self, backbone: nn.Module, num_classes: int, num_heads: int, proj_dim: int):
        super().__init__()
        dim = int(backbone.embed_dim)
        self.backbone = backbone
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, proj_dim))
        self.heads_layer = nn.Linear(proj_dim, num_heads * num_classes)
        nn.init.xavier_normal_(self.heads_layer.weight)
        nn.init.zeros_(self.heads_layer.bias)
        self.num_heads, self.num_classes = num_heads, num_classes

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = self.norm(z)
        extra = self.heads_layer(self.proj(z.detach()))
        projection = F.normalize(self.proj(z), dim=-1)
        return self.head(z), extra.view(len(z), self.num_heads, self.num_classes), projection

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.heads(self.backbone(images))


@register_algorithm("dac")
class DAC(SemiAlgorithm):
    """Diversify and Conquer (Kong et al. 2025, IEEE TNNLS), as DivCon's ``DAC.train_step``.

    ``num_heads`` heads learn the labels and, each on its own, FixMatch-style hard pseudo-labels
    from its weak view (``head_threshold``); the pairwise mutual information between heads over
    the weak views of the batch is minimised (``diversity_weight``), so the heads disagree where
    the labels say nothing. A sample's agreement ``exp(-mean |p_h - p_g| / T)`` is min-max
    normalised over the unlabelled pool, averaged in time (``score_momentum``) and kept in
    ``SampleState`` (``open_score``, high = inlier). After ``warmup`` (a fraction of the run):
    the main classifier trains on confident hard pseudo-labels weighted by
    ``min(1, (s / otsu)^weight_temperature)`` with Otsu's threshold over the pool, and a
    K + 1 open-set target ``[s p, |1 - s|]`` is distilled into the projection through a memory
    bank of weak-view projections (``distill_weight``). At test time ``1 - agreement`` of the
    heads scores outliers.
    """

    open_set = True
    # the weak view trains the heads (diversity loss): it stays in the concatenated forward
    target_views = ()
    fixmatch_family = True
    summary = "disagreement of diverse heads marks outliers (Kong et al. 2025)"

    def __init__(
        self,
        backbone,
        num_classes,
        state,
        *,
        num_heads: int = 10,
        proj_dim: int = 128,
        threshold: float = 0.95,
        head_threshold: float = 0.95,
        head_weight: float = 1.0,
        diversity_weight: float = 0.05,
        distill_weight: float = 1.5,
        agreement_temperature: float = 1.0,
        score_momentum: float = 0.9,
        weight_temperature: float = 1.5,
        soft_weights: bool = True,
        use_confidence: bool = False,
        bank_size: int | None = None,
        bank_temperature: float = 0.1,
        warmup: float = 1.0 / 256,
        **kwargs,
    ):
        if num_heads < 2:
            raise ConfigError(f"dac needs at least 2 heads to disagree, got num_heads={num_heads}")
        self.num_heads, self.proj_dim = int(num_heads), int(proj_dim)
        super().__init__(backbone, num_classes, state, **kwargs)
        self.threshold = check_threshold("threshold", threshold)
        self.head_threshold = check_threshold("head_threshold", head_threshold)
        self.score_momentum = check_threshold("score_momentum", score_momentum)
        self.head_weight, self.diversity_weight = float(head_weight), float(diversity_weight)
        self.distill_weight = float(distill_weight)
        self.agreement_temperature = float(agreement_temperature)
        self.weight_temperature, self.soft_weights = float(weight_temperature), bool(soft_weights)
        self.use_confidence = bool(use_confidence)
        self.bank_temperature, self.warmup = float(bank_temperature), float(warmup)
        size = int(bank_size) if bank_size else max(int(state.unlabelled.sum()), 1)
        if size < 1:
            raise ConfigError(f"dac bank_size must be positive, got {bank_size}")
        # one circular bank of [projection | K + 1 open targets] rows, gathered from every process
        self.bank = EmbeddingQueue(size, self.proj_dim + self.num_classes + 1)
        self.bank.rows[:, : self.proj_dim] = F.normalize(torch.randn(size, self.proj_dim), dim=-1)
        for name in (AGREEMENT, CONFIDENCE, SCORE):
            state.add(name, fill=0.0)

    def build_model(self, backbone):
        return MultiHeadNet(backbone, self.num_classes, self.num_heads, self.proj_dim)

    def forward(self, labelled, unlabelled, progress, *, generator=None):
        (main_l, heads_l, _), (main_w, heads_w, proj_w), (main_s, heads_s, proj_s) = (
            self.forward_all(labelled, unlabelled)
        )
        y = labelled["label"]
        heads_sup = cross_entropy(heads_l.flatten(0, 1), y.repeat_interleave(self.num_heads))
        sup_loss = self.supervised_loss(main_l, labelled) + heads_sup.mean()
        terms = self.unlabelled_terms(
            main_w, heads_w, main_s, heads_s, proj_s, unlabelled["index"], progress
        )
        self.update_bank(proj_w, terms["open_targets"])
        open_loss = (
            self.head_weight * terms["head_loss"]
            + self.diversity_weight * terms["diversity_loss"]
            + self.distill_weight * terms["distill_loss"]
        )
        out = self.result(
            sup_loss,
            terms["unsup_loss"],
            mask=terms["mask"],
            pseudo_labels=terms["pseudo_labels"],
            unlabelled=unlabelled,
            unsup_per_sample=terms["unsup_per_sample"],
            open_loss=open_loss.detach(),
            head_mask_ratio=terms["head_mask"].mean(),
        )
        out["loss"] = out["loss"] + open_loss
        if "outlier_fraction" in terms:
            out["outlier_fraction"] = terms["outlier_fraction"]
        return out

    def unlabelled_terms(
        self, main_w, heads_w, main_s, heads_s, proj_s, index, progress
    ) -> dict[str, Tensor]:
        """The unlabelled losses and masks of one step from the weak view's main logits
        ``[B, K]`` and head logits ``[B, H, K]``, the strong view's and its projection, in the
        order of DivCon's ``DAC.train_step``; updates the per-sample scores."""
        with torch.no_grad():
            head_probs = F.softmax(heads_w.detach().float(), dim=-1)
            score = self.inlier_scores(head_probs, index)
            probs = F.softmax(main_w.detach().float(), dim=-1)
            open_targets = torch.cat([probs * score[:, None], (1.0 - score).abs()[:, None]], 1)
            head_mask, head_pseudo, _ = confidence_mask(head_probs, self.head_threshold)
        diversity = pairwise_mutual_information(F.softmax(heads_w.float(), dim=-1))
        head_loss = cross_entropy(heads_s.flatten(0, 1), head_pseudo.flatten())
        out = {
            "open_targets": open_targets,
            "diversity_loss": diversity,
            "head_loss": (head_loss * head_mask.flatten()).mean(),
            "head_mask": head_mask,
        }
        confident, pseudo, _ = confidence_mask(probs, self.threshold)
        per_sample = cross_entropy(main_s, pseudo)
        zero = main_s.sum() * 0.0
        out.update(pseudo_labels=pseudo, unsup_per_sample=per_sample.detach())
        if progress < self.warmup:  # DivCon: ``epoch < start_fix``
            return {**out, "unsup_loss": zero, "distill_loss": zero, "mask": confident * 0.0}
        inlier, weights = self.sample_weights(index)
        mask = confident * (weights if self.soft_weights else inlier)
        out.update(
            unsup_loss=(per_sample * mask).mean(),
            distill_loss=self.distill_loss(proj_s, open_targets),
            mask=mask,
            outlier_fraction=1.0 - inlier.mean(),
        )
        return out

    @torch.no_grad()
    def inlier_scores(self, head_probs: Tensor, index: Tensor) -> Tensor:
        """DivCon's ``SoftWeightingHook.weighting``: each sample's agreement (and mean-head
        confidence) written to the state, min-max normalised over the unlabelled pool (unvisited
        samples at 0), their EMA with ``score_momentum`` kept; returns the EMA rows ``[B]``."""
        agreement = head_agreement(head_probs, self.agreement_temperature)
        confidence = head_probs.mean(dim=1).max(dim=-1).values
        self.state.write(AGREEMENT, index, agreement)
        self.state.write(CONFIDENCE, index, confidence)
        score = _min_max(agreement, self._pool(AGREEMENT))
        if self.use_confidence:
            score = score * _min_max(confidence, self._pool(CONFIDENCE))
        rows, m = index.to(self.state[SCORE].device), self.score_momentum
        self.state.write(SCORE, index, m * self.state[SCORE][rows] + (1.0 - m) * score)
        return self.state[SCORE][rows]

    @torch.no_grad()
    def sample_weights(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """DivCon's ``SoftWeightingHook.masking``: Otsu's threshold over the scores of the whole
        unlabelled pool; returns the hard mask ``s >= otsu`` and the soft weights ``min(1,
        (s / (otsu + 1e-8))^weight_temperature)`` of the batch."""
        threshold = otsu_threshold(self._pool(SCORE).cpu())
        score = self.state[SCORE][index.to(self.state[SCORE].device)]
        soft = (score / (threshold + 1e-8)) ** self.weight_temperature
        return (score >= threshold).float(), soft.clamp(max=1.0)

    def distill_loss(self, projection: Tensor, open_targets: Tensor) -> Tensor:
        """DivCon's open-set distillation: the strong view's projection attends over the memory
        bank (``softmax(z B^T / temperature)``), the attended bank targets are its K + 1
        prediction, trained by soft cross-entropy towards the weak view's open targets. The
        log is clamped at 1e-12 (unfilled rows are zero: DivCon's value is infinite there)."""
        features, targets = self.bank_features.clone(), self.bank_targets.clone()
        logits = projection.float() @ features.T / self.bank_temperature
        relation = F.softmax(logits, dim=-1)
        neighbours = relation @ targets
        return -(neighbours.clamp_min(1e-12).log() * open_targets).sum(dim=1).mean()

    @property
    def bank_features(self) -> Tensor:
        """The bank's projections ``[size, proj_dim]`` (a view of its rows)."""
        return self.bank.rows[:, : self.proj_dim]

    @property
    def bank_targets(self) -> Tensor:
        """The bank's open targets ``[size, K + 1]`` (a view of its rows)."""
        return self.bank.rows[:, self.proj_dim :]

    @property
    def bank_pointer(self) -> Tensor:
        return self.bank.pointer

    @torch.no_grad()
    def update_bank(self, features: Tensor, targets: Tensor) -> None:
        """DivCon's ``DAC._update_bank``: the weak views' projections and open targets of
        every process written at the pointer of a circular memory bank."""
        self.bank.push(torch.cat([features, targets.to(features.dtype)], dim=1))

    def _pool(self, name: str) -> Tensor:
        field = self.state[name]
        unlabelled = self.state.unlabelled
        return field[unlabelled] if bool(unlabelled.any()) else field

    def outlier_score_from_embeddings(self, embeddings, model):
        """``1 - agreement`` of the heads (DivCon's ``eval.py``: ``calculate_consensus``,
        min-max normalised over the test set, a monotone map that leaves the AUROC alone)."""
        with torch.no_grad():
            _, heads, _ = model.heads(embeddings)
        return 1.0 - head_agreement(F.softmax(heads, dim=-1), self.agreement_temperature)


def _min_max(values: Tensor, pool: Tensor) -> Tensor:
    low, high = pool.min(), pool.max()
    return ((values - low) / (high - low + 1e-8)).abs()
