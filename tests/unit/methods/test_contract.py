"""The method contract, checked for every registered method (a new one the day it registers).

Each method is built on a tiny backbone of its modality with small heads, and one step on its
default views must give a finite scalar loss whose gradient reaches the backbone, be a function
of the generator state alone (never the global RNG; the same after a ``get_state`` /
``set_state`` round trip, as a resumed run), return ``embedding [N, D]`` when asked, and accept
``on_step_end(progress)``; its docstring names the paper.
"""

from __future__ import annotations

import copy
import inspect
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

from labelless.augment.graph import graph_views
from labelless.augment.tabular import tabular_views
from labelless.augment.timeseries import timeseries_views
from labelless.augment.views import RECIPES, view_recipe
from labelless.backbones import DEFAULT_BACKBONE, create_backbone
from labelless.data.graph import Graph, collate_graphs
from labelless.errors import ConfigError
from labelless.methods import METHODS, create_method
from labelless.train.module import SSLModule

BATCH = 8
LAYOUT = {"num_numeric": 3, "cardinalities": [4, 3]}
#: Tiny versions of every backbone a method may ask for. ``ts_cnn``'s timestamp masking is off:
#: the backbone draws it from the global RNG (a backbone takes no generator).
SMALL_BACKBONES = {
    "resnet18_cifar": {"in_channels": 1, "width": 0.125, "input_size": 16},
    "vit_tiny": {"in_channels": 1, "image_size": 16, "patch_size": 2, "depth": 1, "embed_dim": 24},
    "mlp": {"in_channels": 5, "hidden_dim": 32, "depth": 2, **LAYOUT},
    "ft_transformer": {"in_channels": 5, "dim": 16, "depth": 1, "heads": 2, **LAYOUT},
    "ts_cnn": {"in_channels": 2, "hidden_dim": 16, "embed_dim": 24, "depth": 2, "mask_rate": 0.0},
}
#: Method options shrunk to test size, for whichever of them a method takes.
SMALL_OPTIONS = {
    "proj_hidden_dim": 32,
    "proj_dim": 16,
    "pred_hidden_dim": 32,
    "out_dim": 32,
    "hidden_dim": 16,
    "bottleneck_dim": 16,
    "num_prototypes": 10,
    "queue_size": 32,
    "decoder_width": 16,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "predictor_width": 16,
    "predictor_depth": 1,
    "predictor_heads": 2,
    "timesteps": 3,
    "num_heads": 2,
    "horizon": 8,
}


#: Tiny graph encoders (node features 5); graph methods are built for the first data level
#: they name in ``graph_backbones`` with that level's readout.
SMALL_GNN = {"in_channels": 5, "hidden_dim": 16, "num_layers": 2}


def _build_graph(name: str, options: dict):
    cls = METHODS[name]
    _level, (backbone_name, kwargs) = next(iter(cls.graph_backbones.items()))
    small = {**SMALL_GNN, "readout": kwargs.get("readout")}
    if "concat_layers" in kwargs:
        small["concat_layers"] = kwargs["concat_layers"]
    if backbone_name == "gat":
        small["heads"] = 2
    return create_method(name, create_backbone(backbone_name, **small), **options)


def _build(name: str):
    """The method on the tiny default backbone of its modality (a ViT when it needs one)."""
    cls = METHODS[name]
    accepted = inspect.signature(cls.__init__).parameters
    options = {k: v for k, v in SMALL_OPTIONS.items() if k in accepted}
    if cls.modality == "graph":
        return _build_graph(name, options)
    backbone_name = cls.default_backbone or DEFAULT_BACKBONE[cls.modality]
    candidates = [backbone_name] + (["vit_tiny"] if cls.modality == "image" else [])
    for i, candidate in enumerate(candidates):
        kwargs = {**SMALL_BACKBONES[candidate], **(cls.default_backbone_kwargs or {})}
        if "teacher" in accepted:  # distillation: a tiny random teacher of the same kind
            options["teacher"] = create_backbone(candidate, **kwargs)
        try:
            return create_method(name, create_backbone(candidate, **kwargs), **options)
        except ConfigError:  # e.g. MAE and I-JEPA need a ViT
            if i == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")


def _without_dropout(method: nn.Module) -> nn.Module:
    """Dropout draws from the global RNG by design (a checkpoint restores that one too); off
    here, so that the only randomness left in a step is the method's own."""
    for module in method.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0
    return method


def _graph_inputs(graph_level: bool) -> Graph:
    """``BATCH`` nodes of one graph (a ring with chords), or ``BATCH`` small graphs collated."""
    generator = torch.Generator().manual_seed(0)
    if not graph_level:
        ring = torch.arange(BATCH)
        pairs = torch.cat(
            [torch.stack([ring, (ring + 1) % BATCH]), torch.tensor([[0, 2], [4, 6]])], 1
        )
        edges = torch.cat([pairs, pairs.flip(0)], 1)
        return Graph(torch.randn(BATCH, 5, generator=generator), edges, None, 1, None)
    graphs = []
    for i in range(BATCH):
        size = 3 + i % 4
        path = torch.stack([torch.arange(size - 1), torch.arange(1, size)])
        edges = torch.cat([path, path.flip(0)], 1)
        graphs.append(Graph(torch.randn(size, 5, generator=generator), edges, None, 1, None))
    return collate_graphs(graphs)


def _inputs(modality: str, graph_level: bool = False) -> torch.Tensor | Graph:
    if modality == "graph":
        return _graph_inputs(graph_level)
    rng = np.random.default_rng(0)
    if modality == "image":
        return torch.from_numpy(rng.integers(0, 256, (BATCH, 1, 16, 16), dtype=np.uint8))
    if modality == "tabular":
        numeric = rng.normal(size=(BATCH, 3))
        codes = np.stack([rng.integers(0, 4, BATCH), rng.integers(0, 3, BATCH)], 1)
        return torch.from_numpy(np.concatenate([numeric, codes], 1)).float()
    return torch.from_numpy(rng.normal(size=(BATCH, 2, 48))).float()


def _view_maker(method):
    recipe, modality = method.default_views, method.modality
    if modality == "image":
        multi_crop = any(spec.size_ratio < 1.0 for spec in RECIPES[recipe])
        local = {"num_local_crops": 2} if multi_crop else {}
        return view_recipe(recipe, size=16, mean=[0.5], std=[0.25], **local)
    if modality == "tabular":
        meta = {"numeric": ["a", "b", "c"], "categorical": ["d", "e"]}
        return tabular_views(recipe, reference=_inputs("tabular"), meta=meta)
    if modality == "graph":
        return graph_views(recipe)
    return timeseries_views(recipe)


def _views(method, seed: int = 0) -> list[torch.Tensor]:
    inputs = _inputs(method.modality, hasattr(method.backbone, "readout"))
    return _view_maker(method)(inputs, generator=torch.Generator().manual_seed(seed))


def _step(method, views, generator) -> dict[str, torch.Tensor]:
    return method(views, {}, generator=generator)


@pytest.fixture(scope="module")
def built() -> dict:
    """Each method built once (the tests deep-copy before stepping)."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = _without_dropout(_build(name))
        return copy.deepcopy(cache[name])

    return get


NAMES = sorted(METHODS)


@pytest.mark.parametrize("name", NAMES)
def test_registration_and_docstring_cite_a_paper(name):
    cls = METHODS[name]
    doc = (sys.modules[cls.__module__].__doc__ or "") + (cls.__doc__ or "")
    assert re.search(r"\b(19|20)\d\d\b", doc), f"{name}: cite the paper (authors, year)"
    assert len(cls.summary) > 20 and cls.modality in ("image", "tabular", "timeseries", "graph")
    assert "generator" in inspect.signature(cls.forward).parameters


@pytest.mark.parametrize("name", NAMES)
def test_a_step_has_finite_loss_gradient_and_embedding(name, built):
    method = built(name)
    method.wants_embedding = True
    views = _views(method)
    with torch.no_grad():  # a first step fills the queues: MoCo's has no negatives, no gradient
        _step(method, views, torch.Generator().manual_seed(0))
    method.on_step_end(0.0)
    out = _step(method, views, torch.Generator().manual_seed(1))
    loss = out["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    embedding = out["embedding"]
    assert embedding.shape == (BATCH, method.embed_dim) and not embedding.requires_grad
    loss.backward()
    grads = [p.grad for p in method.backbone.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    for progress in (0.5, 1.0):
        method.on_step_end(progress)
    method.wants_embedding = False  # without a monitor: no embedding, or one that came free
    with torch.no_grad():
        out = _step(method, views, torch.Generator().manual_seed(0))
    if "embedding" in out:
        assert out["embedding"].shape == (BATCH, method.embed_dim)


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_step_is_a_function_of_the_generator_state(name, built):
    """Two copies stepped with the same generator state (the second through a get_state /
    set_state round trip, as a checkpoint resume restores it) give the same loss, whatever the
    global RNG holds; and the step leaves the global RNG alone."""
    first = built(name)
    second = copy.deepcopy(first)
    views = _views(first)
    generator = torch.Generator().manual_seed(7)
    saved = generator.get_state()
    torch.manual_seed(1)
    global_state = torch.get_rng_state()
    loss_first = _step(first, views, generator)["loss"]
    assert torch.equal(torch.get_rng_state(), global_state), f"{name} drew from the global RNG"
    resumed = torch.Generator()
    resumed.set_state(saved)
    torch.manual_seed(2)
    loss_second = _step(second, views, resumed)["loss"]
    assert torch.equal(loss_first, loss_second)
    assert torch.equal(generator.get_state(), resumed.get_state())  # the same draws were taken


#: Methods whose step draws random numbers of its own.
DRAWING = ["ijepa", "mae", "mixed_barlow_twins", "tjepa", "tstcc"]


@pytest.mark.parametrize("name", DRAWING)
@torch.no_grad()
def test_drawing_methods_depend_on_the_generator(name, built):
    first = built(name)
    second = copy.deepcopy(first)
    views = _views(first)
    losses = [
        _step(method, views, torch.Generator().manual_seed(seed))["loss"]
        for method, seed in ((first, 0), (second, 1))
    ]
    assert not torch.equal(*losses)


@pytest.mark.parametrize("name", ["ijepa", "mixed_barlow_twins"])
@torch.no_grad()
def test_a_resumed_training_module_draws_the_same_masks(name, built):
    """SSLModule hands its checkpointed generator to the method: after on_save_checkpoint /
    on_load_checkpoint the next step draws what the uninterrupted run drew."""
    method = built(name)
    views = _views(method)
    optim = {"lr": 0.1, "warmup_epochs": 0}
    running = SSLModule(method, None, optim=optim, seed=3)
    method(views, {}, generator=running.generator)  # a first step moves the generator on
    checkpoint: dict = {}
    running.on_save_checkpoint(checkpoint)
    state = copy.deepcopy(method.state_dict())
    expected = method(views, {}, generator=running.generator)["loss"]
    restarted = copy.deepcopy(method)
    restarted.load_state_dict(state)
    resumed = SSLModule(restarted, None, optim=optim, seed=3)
    resumed.on_load_checkpoint(checkpoint)
    torch.manual_seed(123)  # the global RNG of the new process differs
    assert torch.equal(restarted(views, {}, generator=resumed.generator)["loss"], expected)


def test_rankme_monitor_asks_for_embeddings_until_it_has_enough(built):
    """Attaching the monitor turns ``wants_embedding`` on: MAE then returns the embedding it
    otherwise skips; once ``max_rows`` rows of the epoch are in, it is off until the next."""
    from types import SimpleNamespace

    from labelless.train.callbacks import RankMeMonitor

    method = built("mae")
    views = _views(method)
    with torch.no_grad():
        assert "embedding" not in _step(method, views, None)
    monitor, module = RankMeMonitor(max_rows=BATCH), SimpleNamespace(method=method)
    monitor.setup(None, module, "fit")
    with torch.no_grad():
        out = _step(method, views, None)
    monitor.on_train_batch_end(None, module, out, None, 0)
    assert out["embedding"].shape == (BATCH, method.embed_dim) and monitor._count == BATCH
    assert not method.wants_embedding  # max_rows reached
    monitor.on_train_epoch_start(None, module)
    assert method.wants_embedding
