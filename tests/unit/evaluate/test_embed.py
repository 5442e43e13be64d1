"""embed(): the encoder sees resized, normalised batches in inference mode."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from labelless.errors import ConfigError, DataError
from labelless.evaluate import embed


class RecordingEncoder(nn.Module):
    """Embeds a batch as [mean, std, 1] per sample and records what it was called with."""

    embed_dim = 3

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.meta = SimpleNamespace(input_size=8, mean=(0.5,), std=(0.25,))
        self.calls = []

    def forward(self, x):
        self.calls.append(
            {
                "shape": tuple(x.shape),
                "dtype": x.dtype,
                "inference": torch.is_inference_mode_enabled(),
                "training": self.training,
            }
        )
        flat = x.flatten(1)
        return torch.stack([flat.mean(1), flat.std(1), torch.ones(len(x))], dim=1) * self.scale


def test_embed_resizes_normalises_batches_in_inference_mode():
    encoder = RecordingEncoder().train()
    images = np.full((5, 1, 4, 4), 153, dtype=np.uint8)  # 153 / 255 = 0.6 -> (0.6 - 0.5) / 0.25
    z = embed(encoder, images, batch_size=2)

    assert [call["shape"] for call in encoder.calls] == [(2, 1, 8, 8), (2, 1, 8, 8), (1, 1, 8, 8)]
    assert all(call["inference"] and not call["training"] for call in encoder.calls)
    assert all(call["dtype"] == torch.float32 for call in encoder.calls)
    assert encoder.training  # its mode is restored
    assert z.shape == (5, 3) and z.dtype == torch.float32 and z.device.type == "cpu"
    torch.testing.assert_close(z[:, 0], torch.full((5,), 0.4), atol=1e-3, rtol=0)
    assert not z.is_inference()  # usable by autograd afterwards (e.g. a probe)


def test_embed_overrides_and_restores_eval_mode():
    encoder = RecordingEncoder().eval()
    images = torch.full((3, 1, 4, 4), 255, dtype=torch.uint8)
    z = embed(encoder, images, input_size=6, mean=(0.0,), std=(1.0,))
    assert encoder.calls[0]["shape"] == (3, 1, 6, 6)
    torch.testing.assert_close(z[:, 0], torch.ones(3), atol=1e-3, rtol=0)
    assert not encoder.training


def test_embed_explains_missing_metadata_and_bad_shapes():
    encoder = RecordingEncoder()
    del encoder.meta
    with pytest.raises(ConfigError, match="input_size"):
        embed(encoder, np.zeros((2, 1, 4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"\[N, C, H, W\]"):
        embed(RecordingEncoder(), np.zeros((4, 4), dtype=np.uint8))
