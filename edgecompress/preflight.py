"""Checks that need only the recipe, the models' configs and tokenizers (no weights, no data): run by
``validate`` and before any training, so an impossible recipe fails in seconds instead of after the teacher
has been fine-tuned."""

from __future__ import annotations

from edgecompress.embedded import NotInstalled
from edgecompress.errors import ModelError, RecipeError
from edgecompress.modeling.encoders import adapter_for, check_supported, uniform_heads_only
from edgecompress.modeling.layers import ffn_widths, heads_per_layer
from edgecompress.modeling.loading import load_config, load_tokenizer, resolve
from edgecompress.modeling.student import student_config
from edgecompress.prune.select import check_targets
from edgecompress.recipe import Recipe

# model types whose position ids start after the padding index (create_position_ids_from_input_ids): their
# tables hold max_position_embeddings - (padding index + 1) tokens
PADDING_OFFSET_MODELS = {
    "roberta",
    "roberta-prelayernorm",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "data2vec-text",
    "longformer",
    "mpnet",
    "ibert",
    "luke",
}


def position_limit(config) -> int | None:
    """Tokens per input the model's absolute position table holds; None when it has none (relative or rotary
    positions)."""
    size = getattr(config, "max_position_embeddings", None)
    if size is None or getattr(config, "position_biased_input", True) is False:  # DeBERTa: relative only
        return None
    if config.model_type in PADDING_OFFSET_MODELS:
        size -= (config.pad_token_id or 0) + 1
    return size


def _check_length(max_length: int, config, model: str) -> None:
    limit = position_limit(config)
    if limit is not None and max_length > limit:
        raise RecipeError(
            f"{max_length} tokens per example, but the {model}'s position table holds {limit} "
            f"(max_position_embeddings {config.max_position_embeddings}); lower data.max_length",
            where="data.max_length",
        )


def _check_family(recipe: Recipe, config, where: str) -> None:
    """A transformer student is built from, distilled against and pruned through the layers of its family
    (modeling.encoders): refuse a family without an adapter before any training. A BiLSTM / TextCNN student
    reads only the teacher's logits and word table, so any teacher will do."""
    if recipe.student.is_classic:
        return
    stage = "distill" if where == "teacher.model" or recipe.prune is None else "prune"
    check_supported(config, stage, where)


def _check_uniform_heads(recipe: Recipe, student) -> None:
    """MPNet's heads share one bias table: only the same heads from every layer can go."""
    h = recipe.prune.heads
    if recipe.student.is_classic or h.mode == "none" or (h.mode == "structured" and h.scope == "uniform"):
        return
    if adapter_for(student, "prune", "student.model").uniform_heads:
        raise ModelError(uniform_heads_only(student.model_type, "prune"), where="prune.heads")


def check_shapes(recipe: Recipe, hub_optional: bool = False, install: bool = True) -> list[str]:
    """Raise a RecipeError naming the field when the student, the layer mapping, the pruning targets or the
    input length cannot be built, or a ModelError when a tokenizer cannot be loaded and used (cheap: no
    weights). Returns notes on checks it could not make (with ``hub_optional``: a model on the hub that
    cannot be reached now is skipped instead of failing; with ``install`` False: an on-demand embedded model
    that is not downloaded yet is skipped instead of being downloaded)."""
    r = recipe
    try:
        teacher_src = resolve(
            r.teacher.model,
            "teacher.model",
            r.teacher.revision,
            r.teacher.trust_remote_code,
            install=install,
        )
        teacher = load_config(teacher_src)
        _check_family(recipe, teacher, "teacher.model")
        load_tokenizer(teacher_src)
        if r.student.model is not None:
            student_src = resolve(r.student.model, "student.model", install=install)
            student = load_config(student_src)
            _check_family(recipe, student, "student.model")
            load_tokenizer(student_src)
            _check_length(r.data.max_length, student, "student")
        else:
            student, _ = student_config(teacher, r.student)
    except NotInstalled as exc:
        return [f"shape checks skipped: {exc}"]
    except ModelError as exc:
        if hub_optional and "from the hub failed" in exc.message:
            return [f"shape checks skipped: {exc}"]
        raise
    _check_length(r.data.max_length, teacher, "teacher")
    mapping = r.distill.layer_mapping
    if mapping is not None:
        bad = [m for m in mapping if not 0 <= m < teacher.num_hidden_layers]
        if bad:
            raise RecipeError(
                f"teacher layer {bad[0]} does not exist (the teacher has {teacher.num_hidden_layers})",
                where="distill.layer_mapping",
            )
    if r.prune is not None:
        _check_uniform_heads(recipe, student)
        check_targets(r.prune, heads_per_layer(student), ffn_widths(student))
    return []
