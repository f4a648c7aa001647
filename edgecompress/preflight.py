"""Checks that need only the recipe and the models' configs (no weights, no data): run by ``validate`` and
before any training, so an impossible recipe fails in seconds instead of after the teacher has been
fine-tuned."""

from __future__ import annotations

from edgecompress.errors import ModelError, RecipeError
from edgecompress.modeling.layers import ffn_widths, heads_per_layer
from edgecompress.modeling.loading import load_config, resolve
from edgecompress.modeling.student import student_config
from edgecompress.prune.select import check_targets
from edgecompress.recipe import Recipe


def check_shapes(recipe: Recipe, hub_optional: bool = False) -> list[str]:
    """Raise a RecipeError naming the field when the student, the layer mapping or the pruning targets cannot
    be built. Returns notes on checks it could not make (with ``hub_optional``: a model on the hub that
    cannot be reached now is skipped instead of failing)."""
    r = recipe
    try:
        teacher = load_config(
            resolve(r.teacher.model, "teacher.model", r.teacher.revision, r.teacher.trust_remote_code)
        )
        if r.student.model is not None:
            student = load_config(resolve(r.student.model, "student.model"))
        else:
            student, _ = student_config(teacher, r.student)
    except ModelError as exc:
        if hub_optional and "from the hub failed" in exc.message:
            return [f"shape checks skipped: {exc}"]
        raise
    mapping = r.distill.layer_mapping
    if mapping is not None:
        bad = [m for m in mapping if not 0 <= m < teacher.num_hidden_layers]
        if bad:
            raise RecipeError(
                f"teacher layer {bad[0]} does not exist (the teacher has {teacher.num_hidden_layers})",
                where="distill.layer_mapping",
            )
    if r.prune is not None:
        check_targets(r.prune, heads_per_layer(student), ffn_widths(student))
    return []
