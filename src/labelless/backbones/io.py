"""Exporting an encoder as ``encoder.safetensors`` + ``encoder.json``, and loading it back."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from labelless.atomic import write_path_atomic
from labelless.backbones.meta import EncoderMeta
from labelless.backbones.registry import create_backbone
from labelless.backbones.weights import load_state_dict_checked, read_state_dict
from labelless.errors import CheckpointError

WEIGHTS_FILE = "encoder.safetensors"
META_FILE = "encoder.json"
FORMAT = "labelless-encoder/1"


def save_encoder(backbone: nn.Module, directory: str | Path) -> Path:
    """Write ``encoder.safetensors`` (state dict) and ``encoder.json`` (meta) into ``directory``.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    Returns the directory.
    """
    from safetensors.torch import save_file

    meta = getattr(backbone, "meta", None)
    if not isinstance(meta, EncoderMeta):
        raise CheckpointError(
            "the backbone has no EncoderMeta in .meta; build it with "
            "labelless.backbones.create_backbone so it can be rebuilt on load"
        )
    record = {"format": FORMAT, **meta.to_dict()}
    try:
        text = json.dumps(record, indent=2)
    except TypeError as error:
        raise CheckpointError(
            f"meta.kwargs {meta.kwargs!r} cannot be written as JSON ({error}); "
            "use plain numbers, strings, lists and dicts as backbone options"
        ) from error
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Clone: safetensors refuses tensors that share memory and needs contiguous CPU tensors.
    tensors = {
        k: v.detach().to("cpu", copy=True).contiguous() for k, v in backbone.state_dict().items()
    }
    write_path_atomic(
        directory / WEIGHTS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "pt"})
    )
    write_path_atomic(directory / META_FILE, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return directory


def _encoder_files(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / WEIGHTS_FILE, path / META_FILE
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    raise CheckpointError(
        f"{str(path)!r} is not an exported encoder; pass its folder, {WEIGHTS_FILE} or {META_FILE}"
    )


def _read_meta(meta_path: Path) -> EncoderMeta:
    try:
        record = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(
            f"cannot read {str(meta_path)!r} as JSON ({error}); the file is corrupt: export the "
            "encoder again with save_encoder"
        ) from error
    if isinstance(record, dict) and record.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(meta_path)!r} has format {record.get('format')!r}, expected {FORMAT!r}; "
            "export the encoder again with this version of labelless"
        )
    return EncoderMeta.from_dict(record)


def load_encoder(path: str | Path) -> nn.Module:
    """Rebuild an encoder written by ``save_encoder``, in eval mode, with its ``meta`` restored.

    ``path`` is the export folder, its ``encoder.safetensors`` (json beside it) or its
    ``encoder.json``. Weights load strictly: every key and shape must match.
    """
    weights_path, meta_path = _encoder_files(Path(path))
    for file in (meta_path, weights_path):
        if not file.is_file():
            raise CheckpointError(
                f"{str(file)!r} not found; an exported encoder needs both {WEIGHTS_FILE} and "
                f"{META_FILE} in one folder (written by save_encoder)"
            )
    meta = _read_meta(meta_path)
    backbone = create_backbone(meta.architecture, in_channels=meta.in_channels, **meta.kwargs)
    if backbone.embed_dim != meta.embed_dim:
        raise CheckpointError(
            f"{str(meta_path)!r} says embed_dim {meta.embed_dim} but {meta.architecture!r} with "
            f"{meta.kwargs} builds {backbone.embed_dim}; export the encoder again"
        )
    state = read_state_dict(weights_path)
    load_state_dict_checked(backbone, state, source=str(weights_path), drop_head=False)
    backbone.meta = meta
    return backbone.eval()
