"""The recipe's student trained with fewer loss terms: what distillation with attention transfer is measured
against (benchmarks/distill_ablation.py, benchmarks/peers.py).

Same student construction, data, steps, learning rate and seed as the recipe's ``student`` stage; only the
loss weights differ. Each mode is a cached stage ``ablation/<mode>`` of the recipe's run folder.
  labels: cross-entropy on the hard labels only (no teacher)
  kd:     hard labels + soft targets (T^2 KL), no attention or hidden-state transfer
  full:   the recipe's losses (with attention and hidden-state transfer)
Another student shape (``student_cfg``, e.g. narrower) is trained in all three modes, in its own stages.
"""

from __future__ import annotations

from edgecompress.distill.config import DistillConfig, LossWeights
from edgecompress.errors import EdgeCompressError

ABLATIONS = {
    "labels": LossWeights(ce=1, kd=0, attention=0, hidden=0),
    "kd": LossWeights(ce=1, kd=1, attention=0, hidden=0),
    "full": None,  # the recipe's own loss weights
}


def ablation_config(distill: DistillConfig, mode: str) -> DistillConfig:
    if mode not in ABLATIONS:
        raise EdgeCompressError(f"unknown mode '{mode}' (one of: {', '.join(ABLATIONS)})", where="ablation")
    cfg = distill.model_copy(deep=True)
    if ABLATIONS[mode] is not None:
        cfg.weights = ABLATIONS[mode]
    return cfg


def stage_name(mode: str, tag: str | None = None) -> str:
    return f"ablation/{tag}/{mode}" if tag else f"ablation/{mode}"


def ablation_student(pipe, mode: str, student_cfg=None, tag: str | None = None):
    """Train (or reuse) the ablation student ``mode`` in ``pipe``'s run folder; returns its StageResult.

    Without ``student_cfg`` it is the recipe's student (``full`` is then the recipe's own student stage);
    with it, another shape (e.g. a narrower student), every mode in stages ``ablation/<tag>/<mode>``."""
    if student_cfg is None and mode == "full":
        return pipe.student()
    return pipe.student(stage_name(mode, tag), ablation_config(pipe.recipe.distill, mode), student_cfg)
