"""FSDP2 on 2 gloo processes without Lightning (``nn/sharding.py``): DINO with a small ViT is
sharded one unit per transformer block, teacher as student; a training step and the EMA update
on the local shards give the weights of the same step on one process holding the whole batch;
the gathered backbone is the same on both ranks; a teacher sharded otherwise is refused."""

from __future__ import annotations

import pytest
import torch

from labelless.backbones.vit import VisionTransformer
from labelless.errors import ConfigError
from labelless.methods import create_method

from .spawn import run_ranks

pytestmark = pytest.mark.distributed

WORLD = 2
BATCH = 8
DINO = {"out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8, "momentum": (0.9, 0.9)}


def _dino():
    torch.manual_seed(0)
    backbone = VisionTransformer(
        image_size=8, patch_size=2, in_channels=1, embed_dim=16, depth=2, num_heads=2
    )
    return create_method("dino", backbone, **DINO)


def _views() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(BATCH, 1, 8, 8, generator=generator) for _ in range(2)]


def _step(method, views) -> None:
    """One SGD step on ``views`` and the EMA update after it."""
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    method(views, {})["loss"].backward()
    optimizer.step()
    method.on_step_end(0.0)


def _full(method) -> dict[str, torch.Tensor]:
    return {
        name: (value.full_tensor() if hasattr(value, "full_tensor") else value).detach().clone()
        for name, value in method.state_dict().items()
    }


def _sharded_step(rank: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh

    from labelless.nn.sharding import empty_copy, gather_full, shard_method

    method = _dino()
    blueprint = empty_copy(method.backbone)
    shard_method(method, init_device_mesh("cpu", (WORLD,)))
    sizes = {
        name: (param.to_local().numel(), param.numel()) for name, param in method.named_parameters()
    }
    half = BATCH // WORLD
    # DINO's centre is an EMA of the teacher's batch mean: with the whole batch's mean on every
    # process (a gather that DDP needs as well) the step equals the single-process one
    _step(method, [view[rank * half : (rank + 1) * half] for view in _views()])
    return {
        "sizes": sizes,
        "state": _full(method),
        "backbone": dict(gather_full(method.backbone, blueprint).state_dict()),
        "refusal": _misaligned_teacher(),
    }


def _misaligned_teacher() -> str:
    """The error for a DINO whose student blocks are sharded and whose teacher is not."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from labelless.nn.sharding import check_sharded_alike

    method = _dino()
    mesh = init_device_mesh("cpu", (WORLD,))
    for block in method.backbone.blocks:  # the student's blocks only
        fully_shard(block, mesh=mesh)
    try:
        check_sharded_alike(method.teacher.online, method.teacher.target)
    except ConfigError as error:
        return str(error)
    return ""


@pytest.fixture(scope="module")
def ranks() -> list[dict]:
    """What each of 2 gloo processes measured (one launch for the whole module)."""
    return run_ranks(_sharded_step, WORLD)


def test_fsdp2_shards_blocks_and_teacher_and_steps_as_one_process(ranks):
    sizes = ranks[0]["sizes"]
    block = "backbone.blocks.0.mlp.0.weight"
    assert sizes[block][0] < sizes[block][1]  # a shard, not the whole tensor
    teacher = "teacher.target.0.blocks.0.mlp.0.weight"
    assert sizes[teacher] == sizes[block]  # the teacher is sharded as its student
    local = sum(ranks[r]["sizes"][block][0] for r in range(WORLD))
    assert local == sizes[block][1]  # the shards partition the tensor

    method = _dino()
    _step_with_whole_batch(method)
    expected = {name: value.detach() for name, value in method.state_dict().items()}
    for rank in ranks:
        for name, value in expected.items():
            if name == "center":  # per process: its own half of the teacher outputs
                continue
            torch.testing.assert_close(rank["state"][name], value, atol=1e-6, rtol=1e-5)
    for name, value in ranks[0]["backbone"].items():
        assert torch.equal(value, ranks[1]["backbone"][name])  # gathered: the same everywhere
        torch.testing.assert_close(value, expected[f"backbone.{name}"], atol=1e-6, rtol=1e-5)


def _step_with_whole_batch(method) -> None:
    # The loss is a mean over the batch, and FSDP averages the two halves' gradients: one
    # process with both halves, as two half-batch losses averaged, takes the same step.
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    half = BATCH // WORLD
    center = method.center.clone()
    for rank in range(WORLD):
        method.center.copy_(center)
        views = [view[rank * half : (rank + 1) * half] for view in _views()]
        (method(views, {})["loss"] / WORLD).backward()
    optimizer.step()
    method.on_step_end(0.0)


def test_a_teacher_sharded_unlike_its_student_is_refused(ranks):
    messages = [rank["refusal"] for rank in ranks]
    assert all("sharded as a full tensor" in message for message in messages), messages
    assert "shard_method" in messages[0]
