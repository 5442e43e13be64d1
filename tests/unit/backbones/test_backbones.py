"""Backbones: architecture facts, weight loading, and the encoder export round trip."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from labelless.backbones import (
    EncoderMeta,
    create_backbone,
    list_backbones,
    load_encoder,
    resnet18_cifar,
    save_encoder,
)
from labelless.errors import CheckpointError, ConfigError

IMAGENET_MEAN = [0.485, 0.456, 0.406]


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize(("channels", "size"), [(3, 8), (3, 32), (1, 32)])
def test_resnet18_cifar_quarter_width_embeds_to_128(channels, size):
    model = resnet18_cifar(width=0.25, in_channels=channels)
    out = model(torch.randn(2, channels, size, size))
    assert model.embed_dim == 128
    assert out.shape == (2, 128)
    assert torch.isfinite(out).all()


def test_resnet18_cifar_parameter_count_matches_the_reference():
    # stem 3*64*9 + BN 128 = 1,856; stages 147,968 + 525,568 + 2,099,712 + 8,393,728.
    model = resnet18_cifar()
    assert sum(p.numel() for p in model.parameters()) == 11_168_832
    assert model.embed_dim == 512
    assert not any(isinstance(m, (nn.MaxPool2d, nn.Linear)) for m in model.modules())


def test_resnet18_cifar_stem_keeps_the_full_resolution():
    model = resnet18_cifar(width=0.25)
    shapes = {}
    model.conv1.register_forward_hook(lambda m, i, o: shapes.update(stem=tuple(o.shape)))
    model.layer1.register_forward_hook(lambda m, i, o: shapes.update(layer1=tuple(i[0].shape)))
    model.layer4.register_forward_hook(lambda m, i, o: shapes.update(layer4=tuple(o.shape)))
    model(torch.randn(2, 3, 32, 32))
    assert shapes == {"stem": (2, 16, 32, 32), "layer1": (2, 16, 32, 32), "layer4": (2, 128, 4, 4)}


def test_resnet18_cifar_accepts_channels_last():
    model = resnet18_cifar(width=0.25).eval()
    x = torch.randn(2, 3, 16, 16)
    expected = _outputs(model, x)
    model = model.to(memory_format=torch.channels_last)
    got = _outputs(model, x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_resnet18_cifar_meta_defaults_and_overrides():
    default = create_backbone("resnet18_cifar", width=0.25)
    assert default.meta == EncoderMeta(
        architecture="resnet18_cifar",
        kwargs={"width": 0.25},
        embed_dim=128,
        in_channels=3,
        input_size=32,
        mean=[0.4914, 0.4822, 0.4465],
        std=[0.2470, 0.2435, 0.2616],
    )
    custom = create_backbone(
        "resnet18_cifar", width=0.25, input_size=64, mean=[0.5] * 3, std=[0.2] * 3
    )
    assert (custom.meta.input_size, custom.meta.mean, custom.meta.std) == (64, [0.5] * 3, [0.2] * 3)
    with pytest.raises(ConfigError, match="one mean per channel"):
        create_backbone("resnet18_cifar", width=0.25, mean=[0.5])


def test_torchvision_resnet18_equals_torchvision_without_fc():
    backbone = create_backbone("resnet18")
    reference = torchvision.models.resnet18(weights=None)
    reference.fc = nn.Identity()
    reference.load_state_dict(backbone.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert backbone.embed_dim == 512
    assert (backbone.meta.input_size, backbone.meta.mean) == (224, IMAGENET_MEAN)
    torch.testing.assert_close(_outputs(backbone, x), _outputs(reference, x), rtol=0, atol=0)


def test_torchvision_resnet_with_one_channel_replaces_conv1():
    backbone = create_backbone("resnet18", in_channels=1)
    assert backbone.conv1.weight.shape == (64, 1, 7, 7)
    assert _outputs(backbone, torch.randn(2, 1, 32, 32)).shape == (2, 512)
    assert len(backbone.meta.mean) == len(backbone.meta.std) == 1


def test_timm_meta_comes_from_pretrained_cfg():
    backbone = create_backbone("timm:resnet10t")
    # resnet10t's pretrained_cfg trains at 176 px, not the generic 224.
    assert backbone.meta.input_size == backbone.pretrained_cfg["input_size"][-1] == 176
    assert backbone.meta.mean == pytest.approx(IMAGENET_MEAN)
    assert backbone.meta.std == pytest.approx([0.229, 0.224, 0.225])
    assert backbone.embed_dim == backbone.meta.embed_dim == 512
    assert _outputs(backbone, torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_unknown_names_list_the_choices():
    expected = {"resnet18_cifar", "resnet18", "resnet34", "resnet50", "vit_tiny", "vit_small"}
    assert expected | {"small_cnn", "timm:<name>"} == set(list_backbones("image"))
    assert {"mlp", "ft_transformer"} == set(list_backbones("tabular"))
    assert {"ts_cnn", "ts_transformer"} == set(list_backbones("timeseries"))
    assert {"gcn", "gat", "gin"} == set(list_backbones("graph"))
    assert set(list_backbones()) == {
        *list_backbones("image"),
        *list_backbones("tabular"),
        *list_backbones("timeseries"),
        *list_backbones("graph"),
    }
    with pytest.raises(ConfigError, match="resnet18_cifar"):
        create_backbone("resnet19")
    with pytest.raises(ConfigError, match=r"timm\.list_models"):
        create_backbone("timm:no_such_model")


@pytest.fixture
def cifar_weights(tmp_path):
    """A width-0.25 resnet18_cifar and its weights, plus a classifier head, in two file formats."""
    model = resnet18_cifar(width=0.25)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"] = torch.randn(10, 128)
    state["fc.bias"] = torch.randn(10)
    save_file(state, str(tmp_path / "weights.safetensors"))
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "weights.pth")
    return model, tmp_path


def test_weights_from_safetensors_and_nested_pth_give_identical_outputs(cifar_weights):
    model, folder = cifar_weights
    x = torch.randn(2, 3, 8, 8)
    from_safetensors = create_backbone(
        "resnet18_cifar", width=0.25, weights=folder / "weights.safetensors"
    )
    from_pth = create_backbone("resnet18_cifar", width=0.25, weights=folder / "weights.pth")
    expected = _outputs(model, x)
    torch.testing.assert_close(_outputs(from_safetensors, x), expected, rtol=0, atol=0)
    torch.testing.assert_close(_outputs(from_pth, x), expected, rtol=0, atol=0)


def test_mismatching_weights_raise_checkpoint_errors(cifar_weights, tmp_path):
    _, folder = cifar_weights
    with pytest.raises(CheckpointError, match=r"conv1\.weight \(16, 3, 3, 3\) != \(32, 3, 3, 3\)"):
        create_backbone("resnet18_cifar", width=0.5, weights=folder / "weights.safetensors")
    extra = resnet18_cifar(width=0.25).state_dict()
    extra["projector.weight"] = torch.zeros(4, 4)
    del extra["layer4.1.bn2.bias"]
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match=r"layer4\.1\.bn2\.bias.*projector\.weight"):
        create_backbone("resnet18_cifar", width=0.25, weights=tmp_path / "extra.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        create_backbone("resnet18_cifar", width=0.25, weights=tmp_path / "missing.pt")


def test_save_and_load_encoder_round_trip(tmp_path):
    backbone = create_backbone("resnet18_cifar", width=0.25, input_size=16, mean=[0.5] * 3)
    with torch.no_grad():  # running stats away from their init, so they must travel too
        backbone(torch.randn(4, 3, 8, 8) * 3 + 1)
    x = torch.randn(2, 3, 8, 8)
    expected = _outputs(backbone, x)
    folder = save_encoder(backbone, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["encoder.json", "encoder.safetensors"]
    record = json.loads((folder / "encoder.json").read_text())
    assert record["format"] == "labelless-encoder/1"
    for path in (folder, folder / "encoder.safetensors", folder / "encoder.json"):
        loaded = load_encoder(path)
        assert loaded.meta == backbone.meta
        assert loaded.meta.input_size == 16
        torch.testing.assert_close(_outputs(loaded, x), expected, rtol=0, atol=0)


def test_load_encoder_rejects_corrupt_or_missing_files(tmp_path):
    folder = save_encoder(resnet18_cifar(width=0.25), tmp_path)
    meta_path, weights_path = folder / "encoder.json", folder / "encoder.safetensors"
    good_meta = meta_path.read_text()
    meta_path.write_text(good_meta[:40])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_encoder(folder)
    record = json.loads(good_meta)
    del record["embed_dim"]
    meta_path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="embed_dim"):
        load_encoder(folder)
    meta_path.write_text(good_meta)
    weights_path.write_bytes(weights_path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_encoder(folder)
    weights_path.unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(folder)


def test_encoder_meta_dict_round_trip_and_missing_keys():
    meta = EncoderMeta("timm:resnet10t", {"drop_rate": 0.1}, 512, 1, 176, [0.45], [0.22])
    assert EncoderMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    with pytest.raises(CheckpointError, match=r"\['input_size', 'std'\]"):
        EncoderMeta.from_dict(
            {k: v for k, v in meta.to_dict().items() if k not in {"input_size", "std"}}
        )


def test_strided_pointwise_conv_equals_strided_conv():
    from labelless.backbones.resnet_cifar import StridedPointwiseConv

    fast = StridedPointwiseConv(8, 16, 2)
    plain = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False)
    plain.weight.data.copy_(fast.weight.data)
    x = torch.randn(3, 8, 9, 9)
    torch.testing.assert_close(fast(x), plain(x))
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_narrow_resnet_channels_last_odd_batch_backward_does_not_crash():
    """torch 2.14's strided 1x1 conv corrupts the heap here (odd batch, < 16 channels); run in a
    subprocess so a regression fails this test instead of killing the suite."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from labelless.backbones import resnet18_cifar\n"
        "m = resnet18_cifar(width=0.125).to(memory_format=torch.channels_last)\n"
        "for n in (15, 7):\n"
        "    x = torch.randn(n, 3, 16, 16).contiguous(memory_format=torch.channels_last)\n"
        "    m(x).sum().backward()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-500:]


def test_small_cnn_shapes_parameters_and_round_trip(tmp_path):
    model = create_backbone("small_cnn", in_channels=1, width=8)
    # 3x3 convs without bias + BN: 1*8 + 8*8 + 8*16 + 16*16 + 16*32 filters of 9 weights
    convs = 9 * (1 * 8 + 8 * 8 + 8 * 16 + 16 * 16 + 16 * 32)
    norms = 2 * (8 + 8 + 16 + 16 + 32)
    assert sum(p.numel() for p in model.parameters()) == convs + norms
    assert model.embed_dim == 32 and model.meta.input_size == 28
    x = torch.randn(3, 1, 28, 28)
    assert model(x).shape == (3, 32)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 32)  # any size down to 4 px
    model.eval()
    save_encoder(model, tmp_path)
    again = load_encoder(tmp_path)
    assert torch.allclose(again(x), model(x), atol=1e-6)
    with pytest.raises(ConfigError, match="width"):
        create_backbone("small_cnn", width=2.5)
