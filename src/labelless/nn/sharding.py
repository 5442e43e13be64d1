"""FSDP2 for methods with a transformer backbone: one shard unit per block, the EMA teacher
sharded as its student, full weights gathered back for the export. Pure PyTorch (no Lightning):
``train/module.py`` calls ``shard_method`` from Lightning's ``configure_model`` hook.

``torch.distributed.fsdp.fully_shard`` (FSDP2, "per-parameter sharding": every parameter becomes
a ``DTensor`` split along its first dimension over the data-parallel mesh, Zhao et al. 2023 for
FSDP, PyTorch's FSDP2 design in torchtitan, Liang et al. 2024) is applied bottom-up:

1. every transformer block: the children of each ``blocks`` container (labelless' ViT, timm's
   ViTs, MAE's and I-JEPA's decoders and predictors), in the student and in every EMA target;
2. every module that holds such blocks (the ViT itself: patch embedding, tokens, final norm), so
   that a monitor can call the backbone on its own outside the method's forward;
3. every EMA target (``nn.ema.EMA.target``: the teacher's head with it);
4. the method itself, the root (the student's heads, predictors, prototypes).

A block is all-gathered just before its forward and freed after it, so a process holds its
``1 / world`` share of the weights, gradients and optimiser state plus one block at a time.
Buffers (DINO's centre, queues, BatchNorm statistics) are not sharded.

A backbone without transformer blocks (a ResNet, an MLP, a GNN) is refused rather than sharded
per top-level child: such encoders fit on one device, where ``--strategy ddp`` is simpler and
faster, and one unit per stage of a CNN would hold most of the weights in its last stage anyway.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from labelless.errors import ConfigError
from labelless.nn.ema import EMA

SHARDED_CONTAINER = "blocks"  # the attribute name of a backbone's list of transformer blocks


def transformer_blocks(module: nn.Module) -> list[nn.Module]:
    """The children of every ``blocks`` container (``nn.ModuleList`` or ``nn.Sequential``) in
    ``module``, in module order."""
    return [
        block
        for owner in block_owners(module)
        for block in getattr(owner, SHARDED_CONTAINER).children()
    ]


def block_owners(module: nn.Module) -> list[nn.Module]:
    """The modules of ``module`` (itself included) that hold a ``blocks`` container."""
    return [
        owner
        for owner in module.modules()
        if isinstance(getattr(owner, SHARDED_CONTAINER, None), (nn.ModuleList, nn.Sequential))
    ]


def check_shardable(method: nn.Module) -> None:
    """A ConfigError unless ``method``'s backbone has transformer blocks to shard one by one
    (checked before a run starts, and again by ``shard_method``)."""
    backbone = getattr(method, "backbone", method)
    if not transformer_blocks(backbone):
        name = getattr(getattr(backbone, "meta", None), "architecture", type(backbone).__name__)
        raise ConfigError(
            f"--strategy fsdp2 shards a transformer one block at a time, and the backbone "
            f"{name!r} has no transformer blocks: use a ViT backbone (--backbone vit_tiny, "
            "vit_small, timm:vit_...) or --strategy ddp, which suits encoders that fit on one "
            "device"
        )


def shard_method(method: nn.Module, mesh) -> None:
    """Shard ``method`` in place with FSDP2 over the 1-D data-parallel ``mesh``
    (``torch.distributed.device_mesh.DeviceMesh``), units as the module docstring lists, then
    check that every EMA target is sharded as the module it follows (``check_sharded_alike``).
    Every process calls it, on identical modules (same seed). A ConfigError when the backbone
    has no transformer blocks."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    check_shardable(method)
    teachers = [ema for ema in method.modules() if isinstance(ema, EMA)]
    # bottom-up: blocks, then their owners innermost first, then teachers, then the root
    units = [*transformer_blocks(method), *reversed(block_owners(method))]
    units += [ema.target for ema in teachers]
    for unit in [*units, method]:
        if not isinstance(unit, FSDPModule):  # an EMA of the backbone is a block owner already
            fully_shard(unit, mesh=mesh)
    for ema in teachers:
        check_sharded_alike(ema.online, ema.target)


def _placement(tensor: torch.Tensor) -> tuple:
    """(placements, mesh, local shape, global shape) of a DTensor; (None, None, shape, shape)
    for a plain tensor."""
    if hasattr(tensor, "to_local"):  # a DTensor
        local = tuple(tensor.to_local().shape)
        return tuple(tensor.placements), tensor.device_mesh, local, tuple(tensor.shape)
    return None, None, tuple(tensor.shape), tuple(tensor.shape)


def check_sharded_alike(online: nn.Module, target: nn.Module) -> None:
    """Every parameter of the EMA ``target`` has the placements, mesh and local shape of its
    ``online`` counterpart (paired in order, as ``EMA.update`` pairs them), so the EMA update
    runs on the local shards with no communication. A ConfigError naming the first pair that
    differs otherwise."""
    online_params = list(online.named_parameters())
    target_params = list(target.named_parameters())
    if len(online_params) != len(target_params):
        raise ConfigError(
            f"the EMA teacher has {len(target_params)} parameters and its student "
            f"{len(online_params)}: build the teacher as nn.ema.EMA(student) before sharding"
        )
    for (name, param), (target_name, target_param) in zip(
        online_params, target_params, strict=True
    ):
        student, teacher = _placement(param), _placement(target_param)
        if student != teacher:
            raise ConfigError(
                f"the EMA teacher's {target_name!r} is sharded as {_describe(teacher)} but its "
                f"student's {name!r} as {_describe(student)}: the EMA update needs both sharded "
                "alike; shard student and teacher with labelless.nn.sharding.shard_method "
                "(one unit per transformer block in both)"
            )


def _describe(placement: tuple) -> str:
    placements, _, local, full = placement
    if placements is None:
        return f"a full tensor {list(full)}"
    return f"{list(placements)} with local shape {list(local)} of {list(full)}"


def empty_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters are on the meta device (no memory): the blueprint
    ``gather_full`` fills with the full weights after training. Buffers are copied as they are."""
    memo = {
        id(param): nn.Parameter(torch.empty_like(param, device="meta"), param.requires_grad)
        for param in module.parameters()
    }
    return copy.deepcopy(module, memo)


@torch.no_grad()
def gather_full(sharded: nn.Module, blueprint: nn.Module) -> nn.Module:
    """``blueprint`` (``empty_copy`` of ``sharded`` before it was sharded) holding the full
    weights of ``sharded``: each DTensor is all-gathered (``full_tensor``), so every process
    calls it, in the same order. A plain module, usable on one process (export, evaluation)."""
    state = {
        name: value.full_tensor() if hasattr(value, "full_tensor") else value
        for name, value in sharded.state_dict().items()
    }
    blueprint.load_state_dict(state, assign=True)
    return blueprint
