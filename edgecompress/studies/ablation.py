"""The recipe's student trained with other loss terms: what distillation (with attention transfer, or with
an augmented transfer set) is measured against (benchmarks/distill_ablation.py, benchmarks/peers.py).

Same student construction, data, steps, learning rate and seed as the recipe's ``student`` stage; only the
losses and the transfer set differ. Each mode is a cached stage ``ablation/<mode>`` of the recipe's run folder.
  labels:     cross-entropy on the hard labels only (no teacher)
  kd:         hard labels + soft targets, no attention or hidden-state transfer, no augmentation
  kd_aug:     kd on the transfer set enlarged by augmentation (the recipe's, or the default one)
  full:       the recipe's distillation as it is
  full_aug:   the recipe's losses with augmentation; full_noaug: without it
Another student shape (``student_cfg``, e.g. narrower) is trained in every mode, in its own stages.
"""

from __future__ import annotations

from edgecompress.distill.config import AugmentationConfig, DistillConfig, LossWeights
from edgecompress.errors import EdgeCompressError

LABELS_ONLY = LossWeights(ce=1, kd=0, attention=0, hidden=0)
SOFT_TARGETS = LossWeights(ce=1, kd=1, attention=0, hidden=0)
# mode -> (loss weights, transfer set); None weights: the recipe's
MODES = {
    "labels": (LABELS_ONLY, "plain"),
    "kd": (SOFT_TARGETS, "plain"),
    "kd_aug": (SOFT_TARGETS, "augmented"),
    "full": (None, "recipe"),
    "full_aug": (None, "augmented"),
    "full_noaug": (None, "plain"),
}


def ablation_config(distill: DistillConfig, mode: str) -> DistillConfig:
    if mode not in MODES:
        raise EdgeCompressError(f"unknown mode '{mode}' (one of: {', '.join(MODES)})", where="ablation")
    weights, transfer = MODES[mode]
    augmentation = {
        "plain": None,
        "augmented": distill.augmentation or AugmentationConfig(),
        "recipe": distill.augmentation,
    }[transfer]
    return distill.model_copy(update={"weights": weights or distill.weights, "augmentation": augmentation})


def stage_name(mode: str, tag: str | None = None) -> str:
    return f"ablation/{tag}/{mode}" if tag else f"ablation/{mode}"


def ablation_student(pipe, mode: str, student_cfg=None, tag: str | None = None):
    """Train (or reuse) the ablation student ``mode`` in ``pipe``'s run folder; returns its StageResult.

    Without ``student_cfg`` it is the recipe's student (``full`` is then the recipe's own student stage);
    with it, another shape (e.g. a narrower student), every mode in stages ``ablation/<tag>/<mode>``."""
    if student_cfg is None and mode == "full":
        return pipe.student()
    return pipe.student(stage_name(mode, tag), ablation_config(pipe.recipe.distill, mode), student_cfg)
