"""SimSiam: output contract, paper heads, and the stop-gradient on the target branch."""

from __future__ import annotations

import torch

from labelless.methods import create_method

SMALL = {"proj_hidden_dim": 32, "proj_dim": 16, "pred_hidden_dim": 8}


def test_contract_and_paper_heads(backbone, views, check_contract):
    method = create_method("simsiam", backbone, **SMALL)
    assert method.default_views == "moco"
    check_contract(method, views)
    default = create_method("simsiam", backbone)
    linears = [m for m in default.projector if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [2048, 2048, 2048]
    assert isinstance(default.projector[-1], torch.nn.BatchNorm1d)  # BN on the output too
    assert [m.out_features for m in default.predictor if isinstance(m, torch.nn.Linear)] == [
        512,
        2048,
    ]


def _backbone_grads(method, loss):
    method.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in method.backbone.parameters()])


def test_target_branch_is_stop_gradient(backbone, views):
    method = create_method("simsiam", backbone, **SMALL)
    loss = method(views, {})["loss"]
    assert -1.0 <= loss.item() <= 1.0
    got = _backbone_grads(method, loss)

    def manual(detach):
        z0, z1 = (method.projector(method.backbone(v)) for v in views)
        p0, p1 = method.predictor(z0), method.predictor(z1)
        target = (lambda z: z.detach()) if detach else (lambda z: z)
        cosine = torch.nn.functional.cosine_similarity
        return -(cosine(p0, target(z1)).mean() + cosine(p1, target(z0)).mean()) / 2

    reference = manual(True)
    assert torch.allclose(loss, reference, atol=1e-6)  # the value of eq. 2, symmetrised
    assert torch.allclose(got, _backbone_grads(method, reference), atol=1e-6)
    assert not torch.allclose(got, _backbone_grads(method, manual(False)), atol=1e-4)
