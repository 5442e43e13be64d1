"""Barlow Twins: output contract, the paper's projector, the loss it hands the projections to."""

from __future__ import annotations

import torch

from labelless.methods import create_method
from labelless.nn.losses import barlow_twins


def test_contract_and_paper_defaults(backbone, views, check_contract):
    method = create_method("barlow_twins", backbone, proj_hidden_dim=32, proj_dim=16, lambd=0.01)
    assert method.default_views == "barlow_twins"
    out = check_contract(method, views)
    with torch.no_grad():
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
    assert torch.allclose(out["loss"], barlow_twins(z0, z1, lambd=0.01), rtol=1e-5)
    default = create_method("barlow_twins", backbone)
    widths = [m.out_features for m in default.projector if isinstance(m, torch.nn.Linear)]
    assert widths == [8192, 8192, 8192] and default.lambd == 5e-3
    assert not isinstance(default.projector[-1], torch.nn.BatchNorm1d)  # the loss standardises
