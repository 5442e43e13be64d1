"""VICReg: output contract, the paper's expander and loss weights."""

from __future__ import annotations

import torch

from labelless.methods import create_method
from labelless.nn.losses import vicreg


def test_contract_and_paper_defaults(backbone, views, check_contract):
    method = create_method("vicreg", backbone, proj_hidden_dim=32, proj_dim=16, cov_weight=2.0)
    assert method.default_views == "vicreg"
    out = check_contract(method, views)
    with torch.no_grad():
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
    expected = vicreg(z0, z1, sim_weight=25.0, var_weight=25.0, cov_weight=2.0)
    assert torch.allclose(out["loss"], expected, rtol=1e-5)
    default = create_method("vicreg", backbone)
    widths = [m.out_features for m in default.projector if isinstance(m, torch.nn.Linear)]
    assert widths == [8192, 8192, 8192]
    assert default.weights == {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0}
