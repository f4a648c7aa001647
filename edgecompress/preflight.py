"""Checks that need only the recipe and the models' configs (no weights, no data): run before any training,
so an impossible recipe fails in seconds instead of after the teacher has been fine-tuned."""

from __future__ import annotations

from edgecompress.modeling.layers import ffn_widths, heads_per_layer
from edgecompress.modeling.loading import load_config, resolve
from edgecompress.modeling.student import student_config
from edgecompress.prune.select import check_targets
from edgecompress.recipe import Recipe


def check_shapes(recipe: Recipe) -> None:
    """Raise a RecipeError naming the field when the student or the pruning targets cannot be built."""
    r = recipe
    if r.student.model is not None:
        cfg = load_config(resolve(r.student.model, "student.model"))
    else:
        teacher = load_config(
            resolve(r.teacher.model, "teacher.model", r.teacher.revision, r.teacher.trust_remote_code)
        )
        cfg, _ = student_config(teacher, r.student)
    if r.prune is not None:
        check_targets(r.prune, heads_per_layer(cfg), ffn_widths(cfg))
