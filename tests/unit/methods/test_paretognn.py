"""ParetoGNN: every pretext task's step, the MGDA weights (on the simplex, no task dominating
when its loss is scaled up, a combined direction that descends every task), the gradient the
returned loss hands the backbone and the heads, and a single task reducing to itself."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from labelless.backbones import create_backbone
from labelless.data.graph import Graph
from labelless.errors import ConfigError
from labelless.methods.base import create_method
from labelless.methods.paretognn import (
    TASKS,
    ParetoGNN,
    hold_out_edges,
    mgda_weights,
    parse_tasks,
)
from labelless.nn.graph_losses import sce

FEATURES = 6
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _graph(seed: int = 0) -> Graph:
    """Two communities of 12 nodes (a ring each plus random chords, two bridges), features
    shifted by community: 24 nodes, undirected, both directions stored."""
    generator = torch.Generator().manual_seed(seed)
    pairs = []
    for offset in (0, 12):
        ring = torch.arange(12) + offset
        pairs.append(torch.stack([ring, ring.roll(-1)]))
        chords = torch.randint(0, 12, (2, 8), generator=generator) + offset
        pairs.append(chords[:, chords[0] != chords[1]])
    pairs.append(torch.tensor([[0, 5], [12, 17]]))
    edges = torch.cat(pairs, 1)
    low, high = edges.min(0).values, edges.max(0).values
    unique = torch.unique(low * 24 + high)
    edges = torch.stack([unique // 24, unique % 24])
    x = torch.randn(24, FEATURES, generator=generator)
    x[12:] += 1.0
    y = torch.cat([torch.zeros(12), torch.ones(12)]).long()
    return Graph(x, torch.cat([edges, edges.flip(0)], 1), None, 1, y)


def _method(tasks=TASKS, seed: int = 0, **kwargs) -> ParetoGNN:
    torch.manual_seed(seed)
    options = dict(ParetoGNN.graph_backbones["node"][1], hidden_dim=16, out_dim=8)
    backbone = create_backbone("gcn", in_channels=FEATURES, **options)
    return create_method("paretognn", backbone, tasks=tasks, proj_hidden_dim=16, **kwargs)


def _step(method: ParetoGNN, seed: int = 0) -> dict:
    graph = _graph()
    batch = {"inputs": graph, "index": torch.arange(graph.num_nodes), "label": graph.y}
    return method([graph], batch, generator=torch.Generator().manual_seed(seed))


def _task_gradients(method: ParetoGNN, losses, params) -> torch.Tensor:
    """``[K, P]``: each loss's gradient of ``params``, flattened (zeros where unused)."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    torch.zeros(p.numel()) if g is None else g.reshape(-1)
                    for p, g in zip(params, grads, strict=True)
                ]
            )
        )
    return torch.stack(rows)


@pytest.mark.parametrize("tasks", [[task] for task in TASKS] + [list(TASKS)])
def test_a_step_has_finite_losses_and_gradients_for_every_task(tasks):
    method = _method(tasks)
    out = _step(method)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    backbone = [p.grad for p in method.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in backbone)
    assert sum(float(g.abs().sum()) for g in backbone) > 0
    for task in tasks:
        head = list(method.heads[task].parameters())
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head)
        assert f"loss_{task}" in out and not out[f"loss_{task}"].requires_grad


def test_weights_lie_on_the_simplex_and_are_reported():
    method = _method()
    out = _step(method)
    weights = out["task_weights"]
    assert weights.shape == (len(TASKS),) and not weights.requires_grad
    assert bool((weights >= 0).all()) and float(weights.sum()) == pytest.approx(1.0, abs=1e-5)
    for task, weight in zip(TASKS, weights, strict=True):
        assert float(out[f"weight_{task}"]) == pytest.approx(float(weight))
    values = torch.stack([out[f"loss_{task}"] for task in TASKS])
    assert out["loss"].item() == pytest.approx(float(weights @ values), rel=1e-5)
    assert torch.equal(method.last_weights, weights)


def test_the_loss_gives_the_backbone_the_weighted_gradient_and_heads_their_own():
    """Backbone: sum_t w_t g_t (the MGDA direction); each head: the gradient of its own task's
    loss, unweighted (Sener & Koltun's Algorithm 2)."""
    method, graph = _method(), _graph()
    losses = method.task_losses(graph, torch.Generator().manual_seed(0))
    shared = list(method.backbone.parameters())
    gradients = _task_gradients(method, losses, shared)
    head_grads = {
        task: torch.autograd.grad(loss, list(method.heads[task].parameters()), retain_graph=True)
        for task, loss in zip(method.tasks, losses, strict=True)
        if list(method.heads[task].parameters())  # decorrelation has no head
    }
    loss, weights = method.combine(losses)
    loss.backward()
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    assert torch.allclose(got, weights @ gradients, atol=1e-6, rtol=1e-4)
    for task, expected_grads in head_grads.items():
        for param, expected in zip(method.heads[task].parameters(), expected_grads, strict=True):
            assert torch.allclose(param.grad, expected, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("normalisation", ["l2", "none"])
@pytest.mark.parametrize("scaled", ["reconstruction", "link"])
def test_a_task_scaled_by_100_does_not_take_the_update(normalisation, scaled):
    """Multiply one task's loss by 100: the combined direction d = sum_t w_t g_t still has a
    non-negative inner product with every task's gradient (the MGDA property), and the scaled
    task's share of it stays below a half (a plain sum would give it about 100 / 101)."""
    method, graph = _method(normalisation=normalisation), _graph()
    losses = method.task_losses(graph, torch.Generator().manual_seed(0))
    index = method.tasks.index(scaled)
    losses[index] = 100.0 * losses[index]
    gradients = _task_gradients(method, losses, list(method.backbone.parameters()))
    _, weights = method.combine(losses)
    assert bool((weights >= 0).all()) and float(weights.sum()) == pytest.approx(1.0, abs=1e-5)
    direction = weights @ gradients
    tolerance = 1e-4 * float(direction.norm()) * gradients.norm(dim=1)
    assert bool((gradients @ direction >= -tolerance).all())
    contributions = weights * gradients.norm(dim=1)
    assert float(contributions[index] / contributions.sum()) < 0.5


def test_mgda_weights_known_two_task_answers():
    gradients = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    # Plain min-norm: |3w, 1-w|^2 is smallest at w = 1/10.
    assert torch.allclose(mgda_weights(gradients, "none"), torch.tensor([0.1, 0.9]), atol=1e-6)
    # Unit gradients are orthogonal: u = (1/2, 1/2); loss weights u / |g| = (1/6, 1/2) -> sum 1.
    weights = mgda_weights(gradients, "l2")
    assert torch.allclose(weights, torch.tensor([0.25, 0.75]), atol=1e-6)
    direction = weights @ gradients
    assert float(direction[0]) == pytest.approx(float(direction[1]))  # the bisector
    with pytest.raises(ConfigError, match="normalisation"):
        mgda_weights(gradients, "loss")


def test_a_single_task_is_that_task_alone():
    method = _method(["reconstruction"], mask_rate=0.5, alpha=3.0)
    assert list(method.heads) == ["reconstruction"]
    out = _step(method, seed=5)
    assert out["task_weights"].tolist() == [1.0]
    assert torch.equal(out["loss"].detach(), out["loss_reconstruction"])
    # The same loss assembled by hand from the step's draws: GraphMAE-style masking.
    graph, head = _graph(), method.heads["reconstruction"]
    masked = torch.randperm(24, generator=torch.Generator().manual_seed(5))[:12]
    x = graph.x.clone()
    x[masked] = head.mask_token
    codes = head.to_decoder(method.backbone(replace(graph, x=x)))
    codes[masked] = 0.0
    decoded = head.decoder(codes, graph.edge_index)
    expected = sce(decoded[masked], graph.x[masked], alpha=3.0)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_steps_are_a_function_of_the_generator():
    first = _method()
    second = copy.deepcopy(first)
    assert torch.equal(_step(first, 3)["loss"], _step(second, 3)["loss"])
    assert not torch.equal(_step(first, 3)["loss"], _step(first, 4)["loss"])


def test_without_gradients_the_last_weights_are_used():
    method = _method()
    trained = _step(method)["task_weights"]
    with torch.no_grad():
        out = _step(method, seed=1)
    assert torch.equal(out["task_weights"], trained)
    assert out["embedding"].shape == (24, method.embed_dim)


def test_embedding_only_when_asked_without_a_clean_pass():
    method = _method(["reconstruction", "link"])
    assert "embedding" not in _step(method)
    method.wants_embedding = True
    assert _step(method)["embedding"].shape == (24, method.embed_dim)


def test_tasks_parse_from_a_string_in_canonical_order():
    assert parse_tasks("link, reconstruction") == ("reconstruction", "link")
    for bad in (["reconstruction", "reconstruction"], [], "clustring"):
        with pytest.raises(ConfigError, match="tasks"):
            parse_tasks(bad)


def test_graph_encoders_are_refused():
    backbone = create_backbone("gcn", in_channels=FEATURES, hidden_dim=8, readout="sum")
    with pytest.raises(ConfigError, match="node"):
        create_method("paretognn", backbone)


def test_held_out_edges_leave_the_message_graph_in_both_directions():
    graph = _graph()
    kept, positive = hold_out_edges(graph, 0.3, torch.Generator().manual_seed(0))
    assert positive.shape[0] == 2 and positive.shape[1] >= 1
    assert bool((positive[0] < positive[1]).all())
    original = {tuple(e) for e in graph.edge_index.T.tolist()}
    remaining = {tuple(e) for e in kept.edge_index.T.tolist()}
    held = {tuple(p) for p in positive.T.tolist()}
    assert held <= original and remaining <= original
    for u, v in held:
        assert (u, v) not in remaining and (v, u) not in remaining
    removed = {(min(u, v), max(u, v)) for u, v in original - remaining}
    assert removed == held
    assert 0.1 < len(held) / (len(original) / 2) < 0.5
