"""Reference tests of the open-set algorithms (issue 23): on fixed logits and a fixed state,
DAC's and IOMatch's pseudo-labels, masks, scores, thresholds, losses and running state equal
the values computed step by step the way the authors' code computes them. Each reference is
re-derived here in plain torch from that code, independently of labelless's implementation;
the docstrings name the reference files and functions."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from labelless.semi.algorithms import create_algorithm
from labelless.semi.algorithms.dac import AGREEMENT, CONFIDENCE, SCORE
from labelless.semi.state import SampleState

from .conftest import TinyEncoder
from .test_saa import _skimage_otsu

CLASSES, HEADS, PROJ, BATCH = 4, 3, 5, 6
OFFSET, POOL, BANK = 4, 10, 12  # 4 labelled rows, then the unlabelled pool


def _ce(logits, targets):
    """USB's ``ce_loss(reduction='none')``: hard labels or soft targets."""
    log_pred = F.log_softmax(logits, dim=-1)
    if logits.shape == targets.shape:
        return torch.sum(-targets * log_pred, dim=1)
    return F.nll_loss(log_pred, targets, reduction="none")


def _consistency(logits, targets, mask):
    """USB's ``consistency_loss(..., 'ce', mask)``: mean over the batch of ``ce * mask``."""
    return (_ce(logits, targets) * mask).mean()


# DAC ------------------------------------------------------------------------------------------


class DivCon:
    """heejokong/DivCon ``semilearn/algorithms/dac/dac.py`` ``DAC.train_step`` and
    ``DAC._update_bank`` with ``utils.py`` ``SoftWeightingHook.weighting`` / ``.masking``
    (``get_disagree_scores`` mode "l1") and ``DiverseLoss``; CIFAR-10 config values:
    use_joint False, mask_type soft, c_cutoff = p_cutoff = 0.95, ema_alpha 0.9, temp_d 1,
    temp_w 1.5, temp_s 0.1, lambda_reg 1, lambda_mi 0.05, lambda_kd 1.5, start_fix 1."""

    def __init__(self, d_bank, o_bank, j_ema, feats_bank, probs_bank, ptr):
        self.d_score_bank, self.o_score_bank, self.j_score_ema_t = d_bank, o_bank, j_ema
        self.u_feats_bank, self.u_probs_bank, self.ptr = feats_bank, probs_bank, ptr

    def weighting(self, logits_comm, idx):
        probs_comm = torch.softmax(logits_comm, dim=-1)
        disagree = (probs_comm.unsqueeze(1) - probs_comm.unsqueeze(2)).abs().mean([-3, -2, -1])
        d_score = torch.exp(-disagree / 1.0)
        o_score = probs_comm.mean(dim=1).max(dim=-1)[0]
        self.d_score_bank[idx] = d_score
        self.o_score_bank[idx] = o_score
        low, high = self.d_score_bank.min(), self.d_score_bank.max()
        j_score = ((d_score - low) / (high - low + 1e-8)).abs()
        self.j_score_ema_t[idx] = 0.9 * self.j_score_ema_t[idx] + 0.1 * j_score
        return self.j_score_ema_t[idx]

    def masking(self, idx):
        otsu_th = _skimage_otsu(self.j_score_ema_t.numpy())
        hard_mask = self.j_score_ema_t[idx].ge(otsu_th)
        soft_mask = torch.clamp((self.j_score_ema_t[idx] / (otsu_th + 1e-8)) ** 1.5, max=1.0)
        return hard_mask, soft_mask

    @staticmethod
    def diverse_loss(logits):
        num_heads, classes = logits.shape[1], logits.shape[2]
        probs = torch.softmax(logits, dim=-1)
        marginal = probs.mean(dim=0)
        marginal = torch.einsum("hd,ge->hgde", marginal, marginal)
        marginal = marginal.reshape(num_heads * num_heads, classes * classes)
        joint = torch.einsum("bhd,bge->bhgde", probs, probs).mean(dim=0)
        joint = joint.reshape(num_heads * num_heads, classes * classes)
        kl = (joint * (joint.log() - marginal.log())).sum(dim=-1)
        repulsion = torch.triu(-kl.reshape(num_heads, num_heads), diagonal=1)
        return -repulsion[repulsion.nonzero(as_tuple=True)].mean()

    def step(self, main_w, comm_w, main_s, comm_s, proj_s, proj_w, idx, epoch):
        out = {"weight": self.weighting(comm_w.detach(), idx)}
        targets_p = F.softmax(main_w, dim=-1)
        targets_comm = F.softmax(comm_w.reshape(-1, CLASSES), dim=-1)
        targets_open = torch.einsum("bc, b -> bc", targets_p, out["weight"])
        out["targets_open"] = torch.cat([targets_open, (1.0 - out["weight"]).abs()[:, None]], 1)
        out["loss_mi"] = self.diverse_loss(comm_w)
        out["mask_comm"] = targets_comm.max(dim=-1)[0].ge(0.95).float()
        yh_comm = targets_comm.argmax(dim=-1)
        out["loss_unk_reg"] = _consistency(comm_s.reshape(-1, CLASSES), yh_comm, out["mask_comm"])
        out["yh_ulb"] = targets_p.argmax(dim=-1)
        if epoch >= 1:
            hard, weight = self.masking(idx)
            mask_p = targets_p.max(dim=-1)[0].ge(0.95).float()
            out["mask"] = mask_p * weight
            out["loss_u"] = _consistency(main_s, out["yh_ulb"], out["mask"])
            relation = F.softmax(proj_s @ self.u_feats_bank.T / 0.1, dim=-1)
            nn_qu = relation @ self.u_probs_bank
            out["loss_kd"] = torch.sum(-nn_qu.log() * out["targets_open"], dim=1).mean()
            out["outlier_fraction"] = 1.0 - hard.float().mean()
        else:
            out["mask"] = torch.zeros(len(main_w))
            out["loss_u"] = out["loss_kd"] = torch.tensor(0.0)
        ptr = int(self.ptr[0])  # _update_bank
        self.u_feats_bank[ptr : ptr + len(proj_w)] = proj_w
        self.u_probs_bank[ptr : ptr + len(proj_w)] = out["targets_open"]
        self.ptr[0] = (ptr + len(proj_w)) % len(self.u_feats_bank)
        return out


def _dac(start: bool):
    torch.manual_seed(0)
    state = SampleState(OFFSET + POOL, torch.arange(OFFSET, OFFSET + POOL))
    algorithm = create_algorithm(
        "dac", TinyEncoder(), CLASSES, state, num_heads=HEADS, proj_dim=PROJ, bank_size=BANK
    )
    if start:  # mid-training: visited samples, a filled bank, the pointer mid-way
        g = torch.Generator().manual_seed(11)
        pool = slice(OFFSET, OFFSET + POOL)
        state[AGREEMENT][pool] = 0.3 + 0.6 * torch.rand(POOL, generator=g)
        state[CONFIDENCE][pool] = torch.rand(POOL, generator=g)
        state[SCORE][pool] = torch.rand(POOL, generator=g)
        targets = torch.softmax(2 * torch.randn(BANK, CLASSES + 1, generator=g), dim=-1)
        algorithm.bank_targets.copy_(targets)
        algorithm.bank_pointer.fill_(BANK - BATCH)
    pool = slice(OFFSET, OFFSET + POOL)
    reference = DivCon(
        state[AGREEMENT][pool].clone(),
        state[CONFIDENCE][pool].clone(),
        state[SCORE][pool].clone(),
        algorithm.bank_features.clone(),
        algorithm.bank_targets.clone(),
        torch.tensor([int(algorithm.bank_pointer)]),
    )
    return algorithm, reference


def _dac_inputs(steps: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        yield {
            "main_w": 4 * torch.randn(BATCH, CLASSES, generator=g),
            "comm_w": 4 * torch.randn(BATCH, HEADS, CLASSES, generator=g),
            "main_s": torch.randn(BATCH, CLASSES, generator=g),
            "comm_s": torch.randn(BATCH, HEADS, CLASSES, generator=g),
            "proj_s": F.normalize(torch.randn(BATCH, PROJ, generator=g), dim=-1),
            "proj_w": F.normalize(torch.randn(BATCH, PROJ, generator=g), dim=-1),
            "idx": torch.randperm(POOL, generator=g)[:BATCH],
            "epoch": 0 if step == 0 else 1,
        }


@pytest.mark.parametrize("start", [False, True], ids=["first-steps", "mid-training"])
def test_dac_matches_divcon_over_several_steps(start):
    algorithm, reference = _dac(start)
    masks = []
    for x in _dac_inputs():
        expected = reference.step(**x)
        progress = 0.0 if x["epoch"] == 0 else 0.5
        terms = algorithm.unlabelled_terms(
            x["main_w"], x["comm_w"], x["main_s"], x["comm_s"], x["proj_s"],
            x["idx"] + OFFSET, progress,
        )  # fmt: skip
        algorithm.update_bank(x["proj_w"], terms["open_targets"])
        close = lambda a, b: torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-5)  # noqa: E731
        assert close(terms["open_targets"], expected["targets_open"])
        assert close(terms["diversity_loss"], expected["loss_mi"])
        assert close(terms["head_mask"].flatten(), expected["mask_comm"])
        assert close(terms["head_loss"], expected["loss_unk_reg"])
        assert torch.equal(terms["pseudo_labels"], expected["yh_ulb"])
        assert close(terms["mask"], expected["mask"])
        assert close(terms["unsup_loss"], expected["loss_u"])
        assert close(terms["distill_loss"], expected["loss_kd"])
        if "outlier_fraction" in expected:
            assert close(terms["outlier_fraction"], expected["outlier_fraction"])
        pool = slice(OFFSET, OFFSET + POOL)
        assert close(algorithm.state[AGREEMENT][pool], reference.d_score_bank)
        assert close(algorithm.state[SCORE][pool], reference.j_score_ema_t)
        assert close(algorithm.bank_features, reference.u_feats_bank)
        assert close(algorithm.bank_targets, reference.u_probs_bank)
        assert int(algorithm.bank_pointer) == int(reference.ptr[0])
        masks.append(expected["mask"])
    weights = torch.cat(masks[1:])  # the soft weights are neither all 0 nor all 1
    assert bool(((weights > 0) & (weights < 1)).any()) and bool((weights == 0).any())


def test_dac_forward_total_loss_is_divcons(tiny_batches):
    """``total_loss = loss_s + lambda_u loss_u + loss_unk_s + lambda_reg loss_unk_reg +
    lambda_mi loss_mi + lambda_kd loss_kd`` from the network's own outputs (one labelled weak
    view here: DivCon averages two)."""
    algorithm, reference = _dac(start=True)
    labelled, unlabelled = tiny_batches(batch=2, mu=3, classes=CLASSES)
    unlabelled["index"] = torch.arange(BATCH) + OFFSET
    algorithm.model.heads_layer.weight.data.mul_(30)  # heads far apart: a sizeable diversity
    model = copy.deepcopy(algorithm.model)
    main_l, comm_l, _ = model(labelled["views"][0])
    main_w, comm_w, proj_w = model(unlabelled["views"][0])
    main_s, comm_s, proj_s = model(unlabelled["views"][1])
    x = {"main_w": main_w, "comm_w": comm_w, "main_s": main_s, "comm_s": comm_s}
    expected = reference.step(**x, proj_s=proj_s, proj_w=proj_w, idx=torch.arange(BATCH), epoch=1)
    y = labelled["label"]
    loss_unk_s = sum(_ce(comm_l[:, h], y).mean() for h in range(HEADS)) / HEADS
    total = (
        _ce(main_l, y).mean() + expected["loss_u"] + loss_unk_s + expected["loss_unk_reg"]
        + 0.05 * expected["loss_mi"] + 1.5 * expected["loss_kd"]
    )  # fmt: skip
    out = algorithm(labelled, unlabelled, 0.5)
    assert float(expected["loss_mi"].detach()) > 0.01
    assert torch.allclose(out["loss"], total, atol=1e-6)


def test_dac_heads_see_detached_features_and_score_is_divcons_consensus():
    """DivCon ``OSCNet.forward``: ``fc_comm(proj(norm(emb).detach()))``; ``eval.py``
    ``calculate_consensus`` (l1, temp_d 1): the outlier score is ``1 - consensus``."""
    algorithm, _ = _dac(start=False)
    model = algorithm.model
    z = torch.randn(5, 8, requires_grad=True)
    _, heads, projection = model.heads(z)
    assert torch.autograd.grad(heads.sum(), z, allow_unused=True)[0] is None
    assert torch.autograd.grad(projection.sum(), z)[0].abs().sum() > 0
    logits_comm = model.heads_layer(model.proj(model.norm(z))).view(5, HEADS, CLASSES)
    probs = torch.softmax(logits_comm, dim=-1)
    consensus = torch.exp(-(probs.unsqueeze(1) - probs.unsqueeze(2)).abs().mean([-3, -2, -1]))
    score = algorithm.outlier_score_from_embeddings(z.detach(), model)
    assert torch.allclose(score, 1.0 - consensus, atol=1e-6)


# IOMatch --------------------------------------------------------------------------------------


def _iomatch_reference(batches, p_model, ptr):
    """nukezil/IOMatch ``semilearn/algorithms/iomatch/iomatch.py`` ``IOMatch.train_step`` with
    USB's ``DistAlignQueueHook.dist_align`` (uniform ``p_target``, queue ``p_model``),
    ``FixedThresholdingHook.masking`` (p_cutoff 0.95 on ``targets_p``, q_cutoff 0.5 on
    ``targets_q``) and ``consistency_loss`` with soft targets; ``op_loss *= 0`` in epoch 0."""
    out = []
    length = len(p_model)
    p_target = torch.ones(length, CLASSES) / CLASSES
    for logits_w, logits_mb_w, logits_s, logits_open_s, epoch in batches:
        num_ulb = len(logits_w)
        p = F.softmax(logits_w, dim=-1)
        p_model[int(ptr)] = p.mean(dim=0)
        ptr = (int(ptr) + 1) % length
        targets_p = p * (p_target.mean(dim=0) + 1e-6) / (p_model.mean(dim=0) + 1e-6)
        targets_p = targets_p / targets_p.sum(dim=-1, keepdim=True)
        r = F.softmax(logits_mb_w.view(num_ulb, 2, -1), 1)
        in_mask = (torch.sum(targets_p * r[:, 0, :], 1) < 0.5).float()
        q = torch.zeros(num_ulb, CLASSES + 1)
        q[:, :CLASSES] = targets_p * r[:, 1, :]
        q[:, CLASSES] = torch.sum(targets_p * r[:, 0, :], 1)
        p_mask = targets_p.max(dim=-1)[0].ge(0.95).float()
        q_mask = q.max(dim=-1)[0].ge(0.5).float()
        ui_loss = _consistency(logits_s, targets_p, in_mask * p_mask)
        op_loss = _consistency(logits_open_s, q, q_mask)
        if epoch == 0:
            op_loss = op_loss * 0.0
        out.append((targets_p, q, in_mask * p_mask, q_mask, ui_loss, op_loss, p_model.clone()))
    return out


def _mb_sup_loss(logits_ova, label):
    """IOMatch ``utils.py`` ``mb_sup_loss`` (from OpenMatch)."""
    batch = logits_ova.size(0)
    probs = F.softmax(logits_ova.view(batch, 2, -1), 1)
    positive = F.one_hot(label, probs.shape[2]).long()
    open_loss = torch.mean(torch.sum(-torch.log(probs[:, 1, :] + 1e-8) * positive, 1))
    negative = torch.max(-torch.log(probs[:, 0, :] + 1e-8) * (1 - positive), 1)[0]
    return torch.mean(negative) + open_loss


def _iomatch_batches(steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            4 * torch.randn(BATCH, CLASSES, generator=g),
            2 * torch.randn(BATCH, 2 * CLASSES, generator=g),
            torch.randn(BATCH, CLASSES, generator=g),
            torch.randn(BATCH, CLASSES + 1, generator=g),
            0 if step == 0 else 1,
        )
        for step in range(steps)
    ]


@pytest.mark.parametrize("length", [128, 4], ids=["default-queue", "wrapping-queue"])
def test_iomatch_matches_the_authors_over_several_steps(length):
    state = SampleState(OFFSET + POOL, torch.arange(OFFSET, OFFSET + POOL))
    algorithm = create_algorithm("iomatch", TinyEncoder(), CLASSES, state, alignment_length=length)
    p_model, ptr = torch.zeros(length, CLASSES), 0
    if length == 4:  # mid-training: a filled queue, the pointer at its end
        g = torch.Generator().manual_seed(5)
        p_model = torch.softmax(torch.randn(length, CLASSES, generator=g), dim=-1)
        ptr = length - 1
        algorithm.class_probs_queue.copy_(p_model)
        algorithm.queue_pointer.fill_(ptr)
    batches = _iomatch_batches(6)
    expected = _iomatch_reference(batches, p_model.clone(), ptr)
    masks, open_masks = [], []
    for (logits_w, mb_w, logits_s, open_s, epoch), reference in zip(batches, expected, strict=True):
        targets_p, q, mask, q_mask, ui_loss, op_loss, queue = reference
        progress = 0.0 if epoch == 0 else 0.5
        terms = algorithm.unlabelled_terms(
            logits_w, mb_w.view(BATCH, 2, CLASSES), logits_s, open_s, progress
        )
        assert torch.allclose(terms["open_targets"], q, atol=1e-6)
        assert torch.equal(terms["pseudo_labels"], targets_p.argmax(dim=-1))
        assert torch.equal(terms["mask"], mask)
        assert torch.equal(terms["open_mask"], q_mask)
        assert torch.allclose(terms["unsup_loss"], ui_loss, atol=1e-6)
        assert torch.allclose(terms["open_loss"], op_loss, atol=1e-6)
        assert torch.allclose(algorithm.class_probs_queue, queue, atol=1e-7)
        masks.append(mask)
        open_masks.append(q_mask)
    for values in (torch.cat(masks), torch.cat(open_masks)):  # the masks can tell a difference
        assert 0 < float(values.mean()) < 1


def test_iomatch_supervised_and_total_loss_are_the_authors(tiny_batches):
    """``total_loss = ce(logits_x_lb) + lambda_mb mb_sup_loss + lambda_u ui_loss + lambda_op
    op_loss`` from the network's own outputs, epoch > 0."""
    state = SampleState(OFFSET + POOL, torch.arange(OFFSET, OFFSET + POOL))
    torch.manual_seed(0)
    algorithm = create_algorithm("iomatch", TinyEncoder(), CLASSES, state)
    labelled, unlabelled = tiny_batches(batch=2, mu=3, classes=CLASSES)
    unlabelled["index"] = torch.arange(BATCH) + OFFSET
    model = algorithm.model
    closed_l, binary_l, _ = model(labelled["views"][0])
    closed_w, binary_w, _ = model(unlabelled["views"][0])
    closed_s, _, open_s = model(unlabelled["views"][1])
    y = labelled["label"]
    sup = _ce(closed_l, y).mean() + _mb_sup_loss(binary_l.flatten(1), y)
    batch = [(closed_w, binary_w.flatten(1), closed_s, open_s, 1)]
    *_, ui_loss, op_loss, _ = _iomatch_reference(batch, torch.zeros(128, CLASSES), 0)[0]
    out = algorithm(labelled, unlabelled, 0.5)
    assert torch.allclose(out["loss"], sup + ui_loss + op_loss, atol=1e-5)
    q = _iomatch_reference(batch, torch.zeros(128, CLASSES), 0)[0][1]
    assert torch.allclose(state["open_score"][unlabelled["index"]], q[:, -1], atol=1e-6)
