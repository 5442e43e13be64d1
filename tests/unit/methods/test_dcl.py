"""DCL and DCLW: output contract; DCLW is DCL with the weighted loss."""

from __future__ import annotations

import pytest
import torch

from labelless.methods import create_method
from labelless.methods.base import forward_grouped
from labelless.nn.losses import dcl


@pytest.mark.parametrize("name, weighted", [("dcl", False), ("dclw", True)])
def test_contract_and_loss(name, weighted, backbone, views, check_contract):
    method = create_method(name, backbone, proj_hidden_dim=32, proj_dim=16, temperature=0.2)
    assert method.default_views == "simclr" and method.weighted is weighted
    out = check_contract(method, views)
    with torch.no_grad():
        # one backbone batch for both views, as the method does (BatchNorm backbone)
        z0, z1 = (method.projector(f) for f in forward_grouped(method.backbone, views))
    expected = dcl(z0, z1, temperature=0.2, weighted=weighted, sigma=0.5)
    assert torch.allclose(out["loss"], expected, rtol=1e-5)


def test_dclw_weighting_changes_the_loss(backbone, views):
    torch.manual_seed(0)
    plain = create_method("dcl", backbone, proj_hidden_dim=32, proj_dim=16)
    weighted = create_method("dclw", backbone, proj_hidden_dim=32, proj_dim=16)
    weighted.load_state_dict(plain.state_dict())
    assert plain.temperature == weighted.temperature == 0.1  # the paper's default
    assert not torch.allclose(plain(views, {})["loss"], weighted(views, {})["loss"])
