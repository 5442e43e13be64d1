"""A real learning check: SCARF pretraining beats the random-init embedding on a real table."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from labelless.augment.tabular import tabular_views
from labelless.backbones import create_backbone
from labelless.data.tabular import load_table
from labelless.evaluate import knn_accuracy
from labelless.evaluate.tabular import embed_rows
from labelless.methods import create_method


def test_scarf_pretraining_beats_random_init_on_a_categorical_table():
    """scikit-learn's digits as a table of 61 categorical columns (each pixel's intensity 0..16
    is a category, so a random embedding table knows nothing about which codes are alike).
    300 SCARF steps (about 3 s on one thread) must lift kNN accuracy (k=10, T=0.1, cosine) of
    the encoder's embedding on the held-out 30% by at least 0.1 over the same encoder at
    random init (measured: 0.57 -> 0.79 and 0.54 -> 0.83 for seeds 0 and 1)."""
    torch.manual_seed(0)
    digits = load_digits()
    columns = {f"p{i}": digits.data[:, i] for i in range(64) if digits.data[:, i].std() > 0}
    splits = load_table(
        {**columns, "y": digits.target}, target="y", test=0.3, categorical=list(columns)
    )
    train, test = splits.train, splits.test
    encoder = create_backbone(
        "mlp",
        in_channels=train.samples.shape[1],
        num_numeric=0,
        cardinalities=train.meta["cardinalities"],
        hidden_dim=128,
        depth=2,
        cat_embed_dim=4,
    )

    def knn() -> float:
        z_train, z_test = embed_rows(encoder, train.samples), embed_rows(encoder, test.samples)
        return knn_accuracy(z_train, train.labels, z_test, test.labels, k=10, temperature=0.1)

    random_init = knn()
    method = create_method("scarf", encoder, proj_hidden_dim=128, proj_dim=64, temperature=0.2)
    views = tabular_views("scarf", reference=train.samples, meta=train.meta)
    optimiser = torch.optim.AdamW(method.parameters(), lr=1e-3)
    rows, generator = torch.from_numpy(train.samples), torch.Generator().manual_seed(0)
    for _ in range(300):
        batch = rows[torch.randint(0, len(rows), (128,), generator=generator)]
        loss = method(views(batch, generator), {})["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    pretrained = knn()
    assert np.isfinite(loss.item())
    assert pretrained > random_init + 0.1, (random_init, pretrained)
