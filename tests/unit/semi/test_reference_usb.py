"""Reference tests against the authors' code of FixMatch, FlexMatch, FreeMatch, MixMatch, Mean
Teacher and Pseudo-Label: USB (microsoft/Semi-supervised-learning, ``semilearn``), as issue 23
asks (SoftMatch lives in ``test_reference.py``). On fixed inputs and a fixed state, masks,
pseudo-labels, running statistics and losses equal the values computed step by step the way
USB computes them, re-derived here in plain torch, independently of labelless's code. The
encoder is BatchNorm-free, so how the views are batched does not change the logits."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from labelless.nn import sampling
from labelless.semi.algorithms import create_algorithm
from labelless.semi.state import SampleState

from .conftest import TinyEncoder

CLASSES = 4
TOL = {"atol": 1e-6, "rtol": 1e-6}


def _algorithm(name: str, scale: float = 1.0, num_samples: int = 64, **options):
    torch.manual_seed(0)
    state = SampleState(num_samples, torch.arange(num_samples))
    algorithm = create_algorithm(name, TinyEncoder(), CLASSES, state, **options)
    algorithm.model.head.weight.data.mul_(scale)  # confident enough to cross 0.95 sometimes
    return algorithm


def _batches(mu: int = 2, num_views: int = 2, batch: int = 8):
    generator = torch.Generator().manual_seed(1)
    labelled = {
        "views": [torch.randn(batch, 3, 2, 2, generator=generator)],
        "label": torch.arange(batch) % CLASSES,
        "index": torch.arange(batch),
    }
    n = batch * mu
    unlabelled = {
        "views": [torch.randn(n, 3, 2, 2, generator=generator) for _ in range(num_views)],
        "label": torch.arange(n) % CLASSES,
        "index": torch.arange(n),
    }
    return labelled, unlabelled


def _probs(steps: int, batch: int = 16, scale: float = 3.0, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.softmax(torch.randn(batch, CLASSES, generator=generator) * scale, dim=-1)
        for _ in range(steps)
    ]


def _usb_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``semilearn/core/criterions/cross_entropy.py`` ``ce_loss(reduction='none')``."""
    log_pred = F.log_softmax(logits, dim=-1)
    if logits.shape == targets.shape:
        return torch.sum(-targets * log_pred, dim=1)
    return F.nll_loss(log_pred, targets, reduction="none")


def _usb_fixed_threshold_loss(logits_target, logits_trained, p_cutoff=0.95):
    """``FixedThresholdingHook.masking`` (``hooks/masking.py``), ``PseudoLabelingHook``
    (hard label) and ``consistency_loss(..., 'ce', mask)`` (``core/criterions/consistency.py``)."""
    probs = torch.softmax(logits_target.detach(), dim=-1)
    max_probs, _ = torch.max(probs, dim=-1)
    mask = max_probs.ge(p_cutoff).to(max_probs.dtype)
    pseudo = torch.argmax(probs, dim=-1)
    return mask, pseudo, (_usb_ce(logits_trained, pseudo) * mask).mean()


def test_fixmatch_matches_usb():
    """USB ``semilearn/algorithms/fixmatch/fixmatch.py`` ``FixMatch.train_step``: p_cutoff 0.95,
    hard labels, ulb_loss_ratio 1 (``config/classic_cv/fixmatch/fixmatch_cifar10_40_0.yaml``)."""
    algorithm = _algorithm("fixmatch", scale=30.0)
    labelled, unlabelled = _batches()
    out = algorithm(labelled, unlabelled, 0.5)
    with torch.no_grad():
        logits_lb = algorithm.model(labelled["views"][0])
        logits_w, logits_s = (algorithm.model(v) for v in unlabelled["views"])
    sup = _usb_ce(logits_lb, labelled["label"]).mean()
    mask, pseudo, unsup = _usb_fixed_threshold_loss(logits_w, logits_s)
    assert 0 < float(mask.mean()) < 1  # the threshold is seen on both sides
    assert torch.equal(out["mask"], mask) and torch.equal(out["pseudo_labels"], pseudo)
    assert torch.allclose(out["sup_loss"], sup, **TOL)
    assert torch.allclose(out["unsup_loss"], unsup, **TOL)
    assert torch.allclose(out["loss"].detach(), sup + 1.0 * unsup, **TOL)


def _usb_flexmatch(batches, indices, selected_label, p_cutoff=0.95, thresh_warmup=True):
    """USB ``semilearn/algorithms/flexmatch/utils.py`` ``FlexMatchThresholdingHook.masking``
    and ``update``: the mask from ``classwise_acc`` of the previous steps, then
    ``selected_label`` written where ``max_probs.ge(p_cutoff)``, then ``update`` (Counter).
    ``selected_label``: the status a previous step's ``update`` left."""
    selected_label, classwise_acc = selected_label.clone(), torch.zeros(CLASSES)

    def update():
        counter = Counter(selected_label.tolist())
        if max(counter.values()) < len(selected_label):
            used = {k: v for k, v in counter.items() if k != -1}
            denominator = max(counter.values()) if thresh_warmup else max(used.values())
            for i in range(CLASSES):
                classwise_acc[i] = counter[i] / denominator

    update()
    out = []
    for probs, idx in zip(batches, indices, strict=True):
        max_probs, max_idx = torch.max(probs, dim=-1)
        acc = classwise_acc[max_idx]
        mask = max_probs.ge(p_cutoff * (acc / (2.0 - acc))).to(max_probs.dtype)
        select = max_probs.ge(p_cutoff)
        selected_label[idx[select]] = max_idx[select]
        update()
        out.append((mask, max_idx, selected_label.clone()))
    return out


FLEX_START = torch.tensor([0] * 8 + [1] * 5 + [2] * 3 + [3] * 2 + [-1] * 6)


@pytest.mark.parametrize("start", [None, FLEX_START], ids=["first-steps", "mid-training"])
@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_matches_usb_over_several_steps(warmup, start):
    """Six steps over a 24-sample pool; the status and masks follow USB's hook exactly."""
    algorithm = _algorithm("flexmatch", num_samples=24, warmup=warmup)
    mid_training = start is not None
    if start is None:  # USB's warm-up keeps every threshold low while most samples are unused
        start = torch.full((24,), -1)
    algorithm.state.write("flexmatch_status", torch.arange(24), start)
    generator = torch.Generator().manual_seed(2)
    indices = [torch.randperm(24, generator=generator)[:8] for _ in range(6)]
    batches = _probs(6, batch=8, scale=4.0, seed=2)
    batches[0][0] = torch.tensor([0.95, 0.03, 0.01, 0.01])  # exactly tau: selected (ge)
    expected = _usb_flexmatch(batches, indices, start, thresh_warmup=warmup)
    masks = torch.cat([row[0] for row in expected])
    assert 0 < float(masks.mean()) < 1 or not mid_training
    for probs, idx, (mask, pseudo, status) in zip(batches, indices, expected, strict=True):
        weights, labels = algorithm.weights(probs, {"index": idx})
        assert torch.equal(weights, mask) and torch.equal(labels, pseudo)
        assert torch.equal(algorithm.state["flexmatch_status"], status)


MID = {"time_p": 0.7, "p_model": [0.4, 0.3, 0.2, 0.1], "label_hist": [0.35, 0.3, 0.2, 0.15]}


def _usb_freematch(batches, strong_logits, m=0.999, start=None):
    """USB ``semilearn/algorithms/freematch/utils.py`` ``FreeMatchThresholingHook.update`` and
    ``masking`` (use_quantile and clip_thresh False), then ``freematch.py`` ``entropy_loss``
    on the updated ``p_model`` and ``label_hist`` (computed only when ``mask.sum() > 0``)."""
    p_model = torch.ones(CLASSES) / CLASSES
    label_hist = torch.ones(CLASSES) / CLASSES
    time_p = p_model.mean()
    if start is not None:
        time_p = torch.tensor(start["time_p"])
        p_model, label_hist = torch.tensor(start["p_model"]), torch.tensor(start["label_hist"])
    out = []
    for probs, logits_s in zip(batches, strong_logits, strict=True):
        max_probs, max_idx = torch.max(probs, dim=-1, keepdim=True)
        time_p = time_p * m + (1 - m) * max_probs.mean()
        p_model = p_model * m + (1 - m) * probs.mean(dim=0)
        hist = torch.bincount(max_idx.reshape(-1), minlength=CLASSES).to(p_model.dtype)
        label_hist = label_hist * m + (1 - m) * (hist / hist.sum())
        max_probs, max_idx = probs.max(dim=-1)
        mod = p_model / torch.max(p_model, dim=-1)[0]
        mask = max_probs.ge(time_p * mod[max_idx]).to(max_probs.dtype)
        ent = _usb_entropy_loss(mask, logits_s, p_model, label_hist) if mask.sum() > 0 else 0.0
        out.append((mask, max_idx, time_p, p_model, label_hist, torch.as_tensor(ent)))
    return out


def _usb_entropy_loss(mask, logits_s, prob_model, label_hist):
    def inf_to_zero(value):
        value[value == float("inf")] = 0.0
        return value

    prob_s = logits_s[mask.bool()].softmax(dim=-1)
    hist_s = torch.bincount(prob_s.argmax(dim=-1), minlength=CLASSES).to(logits_s.dtype)
    hist_s = hist_s / hist_s.sum()
    mod_prob_model = prob_model.reshape(1, -1) * inf_to_zero(1 / label_hist.reshape(1, -1))
    mod_prob_model = mod_prob_model / mod_prob_model.sum(dim=-1, keepdim=True)
    mod_mean_prob_s = prob_s.mean(dim=0, keepdim=True) * inf_to_zero(1 / hist_s)
    mod_mean_prob_s = mod_mean_prob_s / mod_mean_prob_s.sum(dim=-1, keepdim=True)
    return (mod_prob_model * torch.log(mod_mean_prob_s + 1e-12)).sum(dim=1).mean()


@pytest.mark.parametrize("start", [None, MID], ids=["first-steps", "mid-training"])
def test_freematch_matches_usb_over_several_steps(start):
    algorithm = _algorithm("freematch")
    assert algorithm.fairness_weight == 0.001  # ent_loss_ratio of every USB config
    algorithm.fairness_weight = 1.0  # compare the term itself
    if start is not None:
        algorithm.global_threshold.fill_(start["time_p"])
        algorithm.class_probs.copy_(torch.tensor(start["p_model"]))
        algorithm.class_hist.copy_(torch.tensor(start["label_hist"]))
    batches = _probs(5, seed=4)
    strong = [torch.log(p) + 0.5 * torch.randn_like(p) for p in _probs(5, seed=5)]
    expected = _usb_freematch(batches, strong, start=start)
    if start is not None:
        assert 0 < float(torch.cat([row[0] for row in expected]).mean()) < 1
    assert all(float(row[5]) < 0 for row in expected)  # USB's term is negative
    for probs, logits_s, (mask, pseudo, time_p, p_model, hist, ent) in zip(
        batches, strong, expected, strict=True
    ):
        weights, labels = algorithm.weights(probs, {})
        assert torch.equal(weights, mask) and torch.equal(labels, pseudo)
        assert torch.allclose(algorithm.global_threshold, time_p, atol=1e-7, rtol=0)
        assert torch.allclose(algorithm.class_probs, p_model, atol=1e-7, rtol=0)
        assert torch.allclose(algorithm.class_hist, hist, atol=1e-7, rtol=0)
        fairness = algorithm.extra_losses(logits_s, weights, probs, {})
        assert torch.allclose(fairness, ent.float(), **TOL)


def test_freematch_loss_matches_usb_and_cross_entropy_option():
    """One ``FreeMatch.train_step`` (``freematch/freematch.py``): ``sup + lambda_u unsup +
    lambda_e ent``, lambda_u 1, lambda_e 0.001; ``fairness='cross_entropy'`` flips the term."""
    labelled, unlabelled = _batches()
    totals = {}
    for fairness in ("usb", "cross_entropy"):
        algorithm = _algorithm("freematch", scale=5.0, fairness=fairness)
        out = algorithm(labelled, unlabelled, 0.5)
        with torch.no_grad():
            logits_lb = algorithm.model(labelled["views"][0])
            logits_w, logits_s = (algorithm.model(v) for v in unlabelled["views"])
        probs = torch.softmax(logits_w, dim=-1)
        mask, pseudo, *_, ent = _usb_freematch([probs], [logits_s])[0]
        sup = _usb_ce(logits_lb, labelled["label"]).mean()
        unsup = (_usb_ce(logits_s, pseudo) * mask).mean()
        sign = 1.0 if fairness == "usb" else -1.0
        assert torch.allclose(out["loss"].detach(), sup + unsup + 0.001 * sign * ent, **TOL)
        totals[fairness] = out["loss"].detach()
    assert not torch.allclose(totals["usb"], totals["cross_entropy"], **TOL)


def test_mixmatch_matches_usb(monkeypatch):
    """USB ``semilearn/algorithms/mixmatch/mixmatch.py`` ``MixMatch.train_step`` with
    ``mixup_one_target(..., is_bias=True)`` (``algorithms/utils/ops.py``): T 0.5, mixup_alpha
    0.5, ulb_loss_ratio 100, linear unsup_warm_up 0.4, unsup loss ``consistency_loss(...,
    'mse')`` (mean over classes, then samples). The Beta draw and permutation are fixed."""
    algorithm = _algorithm("mixmatch", scale=3.0)
    labelled, unlabelled = _batches(mu=1)
    n = len(labelled["label"])
    order = torch.randperm(3 * n, generator=torch.Generator().manual_seed(7))
    alphas = []
    monkeypatch.setattr(sampling, "beta", lambda alpha, generator=None: alphas.append(alpha) or 0.3)
    monkeypatch.setattr(sampling, "randperm", lambda size, **kwargs: order)
    out = algorithm(labelled, unlabelled, 0.1)
    assert alphas == [0.5]
    model = algorithm.model
    with torch.no_grad():
        w1, w2 = unlabelled["views"]
        avg = (torch.softmax(model(w1), -1) + torch.softmax(model(w2), -1)) / 2
        sharp = avg ** (1 / 0.5)
        sharp = sharp / sharp.sum(dim=-1, keepdim=True)
        labels = torch.cat([F.one_hot(labelled["label"], CLASSES), sharp, sharp])
        inputs = torch.cat([labelled["views"][0], w1, w2])
        lam = max(0.3, 1 - 0.3)
        mixed_x = lam * inputs + (1 - lam) * inputs[order]
        mixed_y = lam * labels + (1 - lam) * labels[order]
        logits = torch.cat([model(chunk) for chunk in torch.split(mixed_x, n)])
    sup = _usb_ce(logits[:n], mixed_y[:n]).mean()
    unsup = F.mse_loss(torch.softmax(logits[n:], -1), mixed_y[n:], reduction="none")
    unsup = unsup.mean(dim=1).mean()
    lambda_u = 100 * float(min(max(0.1 / 0.4, 0.0), 1.0))
    assert torch.allclose(out["sup_loss"], sup, **TOL)
    assert torch.allclose(out["unsup_loss"], unsup, **TOL)
    assert torch.allclose(out["loss"].detach(), sup + lambda_u * unsup, **TOL)


@pytest.mark.parametrize("progress", [0.1, 0.6])
def test_mean_teacher_matches_usb_without_its_bug(progress):
    """USB ``semilearn/algorithms/meanteacher/meanteacher.py`` ``MeanTeacher.train_step``:
    teacher = EMA weights on one weak view, ``consistency_loss(student, softmax(teacher),
    'mse')``, ulb_loss_ratio 50, linear unsup_warm_up 0.4; the student logits are the student's
    own (USB's code reuses the teacher's there, a bug not reproduced)."""
    algorithm = _algorithm("mean_teacher")
    for param in algorithm.ema_model.parameters():  # a teacher that differs from the student
        param.data.add_(0.5 * torch.randn_like(param))
    labelled, unlabelled = _batches(mu=1)
    out = algorithm(labelled, unlabelled, progress)
    student_view, teacher_view = unlabelled["views"]
    with torch.no_grad():
        logits_lb = algorithm.model(labelled["views"][0])
        teacher = algorithm.ema_model(teacher_view)
        student = algorithm.model(student_view)
    sup = _usb_ce(logits_lb, labelled["label"]).mean()
    unsup = F.mse_loss(torch.softmax(student, -1), torch.softmax(teacher, -1), reduction="none")
    unsup = unsup.mean(dim=1).mean()
    warmup = min(max(progress / 0.4, 0.0), 1.0)
    assert float(unsup) > 1e-4
    assert torch.allclose(out["unsup_loss"], unsup, **TOL)
    assert torch.allclose(out["loss"].detach(), sup + 50 * unsup * warmup, **TOL)
    sigmoid = _algorithm("mean_teacher", rampup_shape="sigmoid", rampup=0.3)
    sigmoid.ema.target.load_state_dict(algorithm.ema.target.state_dict())
    paper = sigmoid(labelled, unlabelled, progress)["loss"].detach()
    t = min(progress / 0.3, 1.0)
    expected = sup + 50 * unsup * torch.exp(torch.tensor(-5.0 * (1 - t) ** 2))
    assert torch.allclose(paper, expected, **TOL)


def test_pseudo_label_matches_usb():
    """USB ``semilearn/algorithms/pseudolabel/pseudolabel.py`` ``PseudoLabel.train_step``:
    p_cutoff 0.95 on the same weak view, hard labels, ulb_loss_ratio 1, linear unsup_warm_up
    0.4."""
    algorithm = _algorithm("pseudo_label", scale=30.0)
    labelled, unlabelled = _batches(mu=1, num_views=1)
    out = algorithm(labelled, unlabelled, 0.3)
    with torch.no_grad():
        logits_lb = algorithm.model(labelled["views"][0])
        logits_u = algorithm.model(unlabelled["views"][0])
    sup = _usb_ce(logits_lb, labelled["label"]).mean()
    mask, pseudo, unsup = _usb_fixed_threshold_loss(logits_u, logits_u)
    assert 0 < float(mask.mean()) < 1
    assert torch.equal(out["mask"], mask) and torch.equal(out["pseudo_labels"], pseudo)
    assert torch.allclose(out["loss"].detach(), sup + unsup * (0.3 / 0.4), **TOL)
