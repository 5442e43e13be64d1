"""Images: ``uint8 [N, C, H, W]``, batched augmentation views, resized and normalised as the
encoder was pretrained, a retrieval grid in the report."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import nn

from labelless.config import ViewsConfig
from labelless.data import Dataset
from labelless.errors import DataError
from labelless.modalities.base import Modality, register_modality

RETRIEVAL_QUERIES = 6
RETRIEVAL_NEIGHBOURS = 8


class Images(Modality):
    name = "image"
    labels_hint = (
        "for an image folder put one sub-folder per class (FOLDER/cat/*.png, FOLDER/dog/*.png)"
    )

    def backbone_inputs(self, train: Dataset, view_size: int | None) -> dict[str, Any]:
        return {
            "in_channels": train.in_channels,
            "input_size": view_size or int(train.meta["image_size"]),
            "mean": train.meta["mean"],
            "std": train.meta["std"],
        }

    def finish_backbone(self, backbone: nn.Module, train: Dataset) -> None:
        """Images carry their view size and normalisation in the backbone's metadata already."""

    def views(self, recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig):
        from labelless.augment import view_recipe

        meta = backbone.meta
        return view_recipe(
            recipe,
            size=meta.input_size,
            mean=meta.mean,
            std=meta.std,
            num_local_crops=views.num_local_crops,
            per_view=views.per_view,
            **views.overrides,
        )

    def encoder_channels(self, train: Dataset) -> int:
        return train.in_channels

    def check_data(self, meta, train: Dataset, data: str) -> None:
        if train.in_channels != meta.in_channels:
            raise DataError(
                f"the encoder expects {meta.in_channels}-channel images but {data!r} has "
                f"{train.in_channels}: evaluate it on data of the kind it was trained on"
            )

    def teacher_inputs(self, student_meta, teacher_meta) -> nn.Module | None:
        """The student's views resized and re-normalised for the teacher's recorded
        preprocessing (``augment.retarget.Retarget``), None when both are the same."""
        from labelless.augment.retarget import Retarget

        ours = (student_meta.input_size, list(student_meta.mean), list(student_meta.std))
        theirs = (teacher_meta.input_size, list(teacher_meta.mean), list(teacher_meta.std))
        if ours == theirs:
            return None
        size, mean, std = theirs
        return Retarget(student_meta.mean, student_meta.std, size=size, mean=mean, std=std)

    def preprocessing(self, meta) -> dict[str, Any]:
        return {"input_size": meta.input_size, "mean": meta.mean, "std": meta.std}

    def report_inputs(self, train, test, train_z, test_z, seed: int) -> dict[str, Any]:
        return {"retrieval": retrieval_examples(train, test, train_z, test_z, seed)}


def retrieval_examples(train: Dataset, test: Dataset, train_z, test_z, seed: int = 0):
    """A few seeded test queries (one per class first) and their nearest training images."""
    from labelless.evaluate import top_k_similar
    from labelless.report import RetrievalExamples

    rng = np.random.default_rng(seed)
    labels = test.labels if test.labels is not None else np.full(len(test), -1)
    classes = [c for c in np.unique(labels) if c >= 0]
    picks = [int(rng.choice(np.flatnonzero(labels == c))) for c in classes[:RETRIEVAL_QUERIES]]
    rest = np.setdiff1d(np.arange(len(test)), picks)
    extra = RETRIEVAL_QUERIES - len(picks)
    if extra > 0 and len(rest):
        picks += rng.choice(rest, min(extra, len(rest)), replace=False).tolist()
    queries = np.array(picks, dtype=np.int64)
    k = min(RETRIEVAL_NEIGHBOURS, len(train_z))
    references = F.normalize(train_z.float(), dim=1)
    _, index = top_k_similar(F.normalize(test_z[queries].float(), dim=1), references, k)
    index = index.cpu().numpy()
    train_labels = train.labels if train.labels is not None else np.full(len(train), -1)
    return RetrievalExamples(
        test.samples[queries], labels[queries], train.samples[index], train_labels[index]
    )


IMAGES = register_modality(Images())
__all__ = ["IMAGES", "Images", "retrieval_examples"]
