"""The LightningModule of semi-supervised runs: views on the device, schedules from the run clock.

It extends the self-supervised ``SSLModule`` (same run clock, learning-rate schedule, seeded
per-process augmentation generator, checkpointed generator and clock state) and replaces the
training step: weak views of the labelled batch, the algorithm's views of the unlabelled batch
(SAA swaps the strong view of naive samples), the algorithm's loss (its random draws from the
same generator as the views), and per-step logs of the supervised / unlabelled losses, the mask
ratio and the pseudo-label accuracy.
"""

from __future__ import annotations

from typing import Any

import torch

from labelless.augment.views import ViewPipeline
from labelless.errors import TrainingError
from labelless.semi.algorithms.base import SemiAlgorithm
from labelless.semi.saa import SampleAdaptiveAugmentation, half_mix
from labelless.train.module import SSLModule

#: Columns of logs/metrics.csv written per step (the report's semi-supervised curves).
STEP_COLUMNS = (
    "train/loss",
    "train/sup_loss",
    "train/unsup_loss",
    "semi/mask_ratio",
    "semi/pseudo_acc",
    "semi/pseudo_acc_all",
)


class SemiModule(SSLModule):
    """Trains a ``SemiAlgorithm`` on ``{"labelled", "unlabelled"}`` uint8 batches.

    ``pipelines`` maps view names (``"weak"``, ``"strong"``, and ``"naive"`` with SAA) to
    ``ViewPipeline``s; ``saa`` (optional) selects naive samples from the ``SampleState``.
    """

    def __init__(
        self,
        algorithm: SemiAlgorithm,
        pipelines: dict[str, ViewPipeline],
        *,
        optim: dict[str, Any],
        seed: int = 0,
        budget_seconds: float | None = None,
        saa: SampleAdaptiveAugmentation | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            algorithm, None, optim=optim, seed=seed, budget_seconds=budget_seconds, **kwargs
        )
        self.pipelines = pipelines
        for name, pipeline in pipelines.items():  # tensors they hold follow the module's device
            if isinstance(pipeline, torch.nn.Module):
                self.add_module(f"views_{name}", pipeline)
        self.saa = saa

    @property
    def algorithm(self) -> SemiAlgorithm:
        return self.method

    def _view(self, name: str, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if name != "strong" or self.saa is None:
            return self.pipelines[name](images, generator=self.generator)[0]
        naive = self.saa.naive(index).to(images.device)
        out = self.pipelines["strong"](images, generator=self.generator)[0]
        if bool(naive.any()):  # naive samples: two strong draws, half of one on the other
            chosen = images[naive]
            first = self.pipelines["naive"](chosen, generator=self.generator)[0]
            second = self.pipelines["naive"](chosen, generator=self.generator)[0]
            out[naive] = half_mix(first, second, self.generator)
        return out

    def make_views(self, batch: dict) -> tuple[dict, dict]:
        lab, unl = batch["labelled"], batch["unlabelled"]
        labelled = {**lab, "views": [self._view("weak", lab["inputs"], lab["index"])]}
        names = self.algorithm.unlabelled_views
        views = [self._view(name, unl["inputs"], unl["index"]) for name in names]
        return labelled, {**unl, "views": views}

    def training_step(self, batch: dict, batch_idx: int):
        labelled, unlabelled = self.make_views(batch)
        out = self.algorithm(labelled, unlabelled, self.progress, generator=self.generator)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss.item()} at step {self.global_step}: lower optim.lr "
                "(or the unlabelled weight) and check the input data for NaN values"
            )
        if self.saa is not None and "unsup_per_sample" in out:
            self.saa.record(unlabelled["index"], out["unsup_per_sample"])
        self._log_step(out)
        return {"loss": loss}

    def _log_step(self, out: dict) -> None:
        values = {
            "train/loss": out["loss"].detach(),
            "train/sup_loss": out["sup_loss"],
            "train/unsup_loss": out["unsup_loss"],
            "train/lr": self.optimizers().param_groups[0]["lr"],
            "train/progress": self.progress,
        }
        for key in ("mask_ratio", "pseudo_acc", "pseudo_acc_all", "outlier_fraction"):
            if key in out:
                values[f"semi/{key}"] = out[key].detach()
        self.log_dict(values, on_step=True, on_epoch=False)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        if self.saa is not None:
            stats = self.saa.step_end(self.global_step)
            if stats:
                self.log_dict(stats, on_step=True, on_epoch=False)

    def on_train_epoch_end(self) -> None:
        self.algorithm.on_epoch_end()
