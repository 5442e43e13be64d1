"""The modality descriptor: everything the top floor needs to know about one kind of data.

A verb never asks which modality it runs on; it asks the descriptor of ``Dataset.modality`` (or of
``encoder.meta.modality``) for the views, the backbone's inputs, the compatibility checks, the
preprocessing record, the extra evaluation protocols and the report's extra inputs. The storage of
the samples is the data layer's half (``labelless.data.formats``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labelless.config import KNN_K, ViewsConfig
from labelless.data import Dataset
from labelless.errors import DataError

MODALITIES: dict[str, Modality] = {}


class Modality:
    """One kind of data. Subclass it, set ``name`` and ``labels_hint``, override what differs
    and register an instance with ``register_modality``. The defaults fit data that is loaded
    already preprocessed as float rows (``[N, F]`` or ``[N, C, ...]``) and embedded as it is."""

    name: str = ""
    # How to give labels to data of this kind, for "this has no labels" errors.
    labels_hint: str = "give a file whose rows carry class labels"
    # kNN's k when neither the run (monitor.knn_k) nor the verb (--k) gives one: the one default
    # of pretrain's monitor and final metrics, evaluate and prune for this kind of data.
    knn_k: int = KNN_K

    @property
    def semi_methods(self) -> dict[str, str]:
        """Semi-supervised methods of this modality's own (name -> summary), for data whose
        samples cannot be batched independently (graph nodes); empty: the batch algorithms of
        ``labelless.semi.algorithms`` apply."""
        return {}

    def run_semi(self, config, splits, run_dir) -> tuple[dict[str, Any], nn.Module]:
        """Train one of ``semi_methods`` on ``splits`` into ``run_dir`` (its encoder saved there):
        ``(metrics, model)``."""
        raise NotImplementedError(f"modality {self.name!r} has no semi-supervised methods")

    def backbone_inputs(self, train: Dataset, view_size: int | None) -> dict[str, Any]:
        """Keyword arguments of ``create_backbone`` fixed by the data (channels, sizes, layout)."""
        return {"in_channels": int(train.samples.shape[1])}

    def method_backbone(
        self, method: type, train: Dataset, view_size: int | None
    ) -> tuple[str | None, dict[str, Any] | None]:
        """The default backbone of ``method`` (a Method class) on ``train`` and its options (None:
        the modality's ``DEFAULT_BACKBONE``): the method's own, sized to the views' side."""
        inputs = self.backbone_inputs(train, view_size)
        return method.default_backbone, method.backbone_options(inputs.get("input_size"))

    def finish_backbone(self, backbone: nn.Module, train: Dataset) -> None:
        """Record in the backbone's metadata what evaluation needs to read new data the same way
        (default: the fitted preprocessing the loader applied, which travels in encoder.json)."""
        backbone.meta.preprocessing = dict(train.meta.get("preprocessing") or {})

    def views(self, recipe: str, train: Dataset, backbone: nn.Module, views: ViewsConfig):
        """The batched view pipeline ``recipe`` for ``train`` (``views`` holds config overrides)."""
        raise NotImplementedError(f"modality {self.name!r} defines no views")

    def encoder_channels(self, train: Dataset) -> int:
        """Input channels to build an encoder from a name alone (``timm:NAME``) for ``train``."""
        return 3

    def check_data(self, meta, train: Dataset, data: str) -> None:
        """``train`` must fit an encoder with ``meta``: a DataError naming the mismatch if not."""
        features = int(train.samples.shape[1])
        if features != meta.in_channels:
            raise DataError(
                f"the encoder takes {meta.in_channels} input channels/columns but {data!r} has "
                f"{features}: evaluate it on data of the kind it was trained on"
            )

    def teacher_inputs(self, student_meta, teacher_meta) -> nn.Module | None:
        """What turns a student's views into the inputs of a teacher encoder with
        ``teacher_meta`` (``labelless distill``); None: the views as they are (the default, for
        data preprocessed when loaded, which both encoders read alike)."""
        return None

    def preprocessing(self, meta) -> dict[str, Any]:
        """The preprocessing record of a run's final metrics for an encoder with ``meta``."""
        return {"modality": self.name, "as_loaded": True}

    def protocols(
        self,
        encoder: nn.Module,
        train: Dataset,
        test: Dataset,
        train_z: torch.Tensor,
        test_z: torch.Tensor,
        *,
        seed: int,
        trained_heads: bool,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """This modality's protocols beyond kNN / linear / label-free: ``(metrics, protocol
        records)``. ``trained_heads`` allows protocols that train networks (slower)."""
        return {}, {}

    def report_inputs(
        self, train: Dataset, test: Dataset, train_z: torch.Tensor, test_z: torch.Tensor, seed: int
    ) -> dict[str, Any]:
        """Extra keyword arguments of ``report.write_report`` (e.g. a retrieval grid)."""
        return {}


def register_modality(modality: Modality) -> Modality:
    """Make ``modality`` known to every verb (its ``name`` is ``Dataset.modality``)."""
    if not modality.name:
        raise ValueError("a modality needs a name")
    if modality.name in MODALITIES:
        raise ValueError(f"modality {modality.name!r} is registered twice")
    MODALITIES[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    """The descriptor of ``name``; unknown data kinds are a DataError listing the known ones."""
    if name not in MODALITIES:
        raise DataError(
            f"labelless has no modality {name!r}; it learns from {sorted(MODALITIES)} data"
        )
    return MODALITIES[name]


def modality_of(item) -> Modality:
    """The descriptor of a Dataset or of an encoder (its ``meta.modality``; images by default)."""
    name = getattr(item, "modality", None) or getattr(getattr(item, "meta", None), "modality", None)
    return get_modality(name or "image")
