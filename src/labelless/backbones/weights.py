"""Reading a local weights file into a backbone, with errors that name the mismatching keys."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from labelless.errors import CheckpointError

# Classifier heads a pretrained file may carry but a backbone (num_classes=0 / fc=Identity) lacks.
HEAD_PREFIXES = ("fc.", "head.", "head_dist.", "classifier.", "last_linear.")
_NESTED_KEYS = ("state_dict", "model")
_MAX_NAMED = 5


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a local ``.safetensors`` or ``.pt/.pth/.bin`` file (CPU).

    A torch file may hold a bare state dict or one nested under ``"state_dict"`` or ``"model"``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"weights file {str(path)!r} not found; pass the path of a local file"
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"cannot read {str(path)!r} as safetensors ({error}); the file is corrupt or "
                "truncated: export it again"
            ) from error
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise CheckpointError(
            f"cannot read {str(path)!r} with torch.load(weights_only=True) ({detail}); the file "
            "is corrupt or holds more than tensors: pass a .safetensors file or a .pt/.pth/.bin "
            "file saved with torch.save(model.state_dict(), path)"
        ) from error
    if isinstance(loaded, dict):
        for key in _NESTED_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(
            f"{str(path)!r} does not hold a state dict of tensors (bare or under 'state_dict' or "
            "'model'); save one with torch.save(model.state_dict(), path)"
        )
    return dict(loaded)


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_NAMED])
    more = f" and {len(keys) - _MAX_NAMED} more" if len(keys) > _MAX_NAMED else ""
    return f"{shown}{more}"


def load_state_dict_checked(
    model: nn.Module, state: dict[str, Tensor], *, source: str, drop_head: bool = True
) -> None:
    """Load ``state`` into ``model``; raise ``CheckpointError`` on any key or shape mismatch.

    With ``drop_head``, keys under a classifier prefix (``fc.``, ``head.``, ...) that ``model``
    does not have are dropped. A missing BatchNorm ``num_batches_tracked`` is tolerated (files
    from older torchvision lack it; PyTorch fills it in).
    """
    expected = model.state_dict()
    if drop_head:
        state = {k: v for k, v in state.items() if k in expected or not k.startswith(HEAD_PREFIXES)}
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_named(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_named(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches (file != model): {_named(wrong_shape)}")
    if problems:
        raise CheckpointError(
            f"weights in {source!r} do not fit this backbone ({'; '.join(problems)}); pass a "
            "file saved from the same architecture, width and in_channels"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"cannot load weights from {source!r}: {error}") from error
