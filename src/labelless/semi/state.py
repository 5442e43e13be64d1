"""``SampleState``: one store for everything an algorithm remembers about each training sample.

FlexMatch's learning status (the class an unlabelled sample was last confidently predicted as),
SAA's historical losses and the open-set scores of IOMatch / DAC are all per-sample tensors
indexed by the sample's position in the training set. They are buffers of one module, so they
travel in the state dict (and therefore in Lightning checkpoints, restored on resume), and every
update is gathered from all processes before it is written, so each process holds the same store
under data parallelism.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from labelless.errors import ConfigError
from labelless.nn.distributed import is_distributed


def _all_gather(tensor: Tensor) -> Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class SampleState(nn.Module):
    """Named per-sample tensors over ``num_samples`` training samples.

    ``add(name, fill, dtype, shape)`` declares a field (before training, so that a checkpoint can
    be loaded into it); ``field[index]`` reads; ``write(name, index, values)`` writes rows, after
    gathering ``index`` and ``values`` from every process (all processes call it with the same
    number of rows, which equal per-process batches guarantee). ``unlabelled`` marks the samples
    of the unlabelled pool (fixed by the split).
    """

    def __init__(self, num_samples: int, unlabelled_index: Tensor | None = None) -> None:
        super().__init__()
        if num_samples < 1:
            raise ConfigError(f"SampleState needs at least one sample, got {num_samples}")
        self.num_samples = int(num_samples)
        mask = torch.zeros(self.num_samples, dtype=torch.bool)
        if unlabelled_index is not None:
            mask[torch.as_tensor(unlabelled_index, dtype=torch.long)] = True
        self.register_buffer("unlabelled", mask)
        self.fields: list[str] = []

    def add(
        self,
        name: str,
        fill: float = 0.0,
        dtype: torch.dtype = torch.float32,
        shape: tuple[int, ...] = (),
    ) -> Tensor:
        if name in self.fields:
            raise ValueError(f"SampleState field {name!r} is declared twice")
        self.register_buffer(name, torch.full((self.num_samples, *shape), fill, dtype=dtype))
        self.fields.append(name)
        return getattr(self, name)

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.fields:
            raise KeyError(f"no SampleState field {name!r}; declared: {self.fields}")
        return getattr(self, name)

    @torch.no_grad()
    def write(self, name: str, index: Tensor, values: Tensor) -> None:
        """Set ``field[index] = values`` on every process (gathered across processes)."""
        store = self[name]
        index = index.to(store.device, torch.long)
        values = values.detach().to(store.device, store.dtype)
        if is_distributed():
            index, values = _all_gather(index), _all_gather(values)
        store[index] = values

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, fields={self.fields}"
