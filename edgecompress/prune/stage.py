"""Prune stage: trim the vocabulary first (so that recovery teaches the student its new tokenisation), then
score heads and feed-forward units on the distilled student, remove them physically and recover by
distillation, optionally in several steps.

The targets were checked against the shapes before any training (``prune.select.check_targets``, called by
the run's preflight).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import torch

from edgecompress.context import StageContext
from edgecompress.distill.memory import TeacherMemory
from edgecompress.distill.stage import DistillPair, distill, teacher_tokenizer_for
from edgecompress.errors import RecipeError, VocabTrimError
from edgecompress.inputs import TOKENIZER_INPUTS, model_inputs
from edgecompress.modeling.classic import is_classic
from edgecompress.modeling.embeddings import factorize_word_embeddings, trim_positions
from edgecompress.modeling.layers import count_parameters, ffn_sizes, head_counts, surviving_heads
from edgecompress.modeling.loading import load_saved_classifier
from edgecompress.modeling.student import evenly_spread
from edgecompress.prune import surgery
from edgecompress.prune.config import EmbeddingShrinkConfig, PruneConfig, PruneStageConfig
from edgecompress.prune.importance import importance
from edgecompress.prune.select import fraction_of, select_heads, select_units, step_target
from edgecompress.prune.vocab import kept_token_ids, model_kept_ids, trim_vocabulary
from edgecompress.training.batching import EncodedSplit, make_loader
from edgecompress.training.loop import precision_name

STAGE_VERSION = 6
IMPORTANCE_FILE = "importance.json"


@dataclass(frozen=True)
class PruneInputs:
    student_dir: Path
    teacher_dir: Path
    init_layers: list[int] | None  # teacher layers the student's layers were copied from (None: random)


class PrunedLayer(TypedDict):
    layer: int  # the student layer it was
    heads_kept: int
    heads_total: int
    head_ids: list[int]
    units_kept: int
    units_total: int


class PruneRecord(TypedDict, total=False):
    train_precision: str  # of the recovery distillation
    params_before: int
    params_after: int
    heads_before: int
    heads_after: int
    units_before: int
    units_after: int
    layers: list[PrunedLayer]
    dropped_layers: list[int]
    vocab: dict | None  # before / after word-pieces and min_frequency, when trimmed
    embeddings: dict  # the word table's rank (and SVD energy kept), the position rows
    steps: list[dict]
    validation: dict | None  # after the last recovery
    removed_head_share: float
    removed_unit_share: float


def shrink_embeddings(student, tokenizer, cfg: EmbeddingShrinkConfig, max_length: int) -> dict:
    """Factorise the word table and cut the position table as configured; what was done, for the record."""
    done: dict = {}
    if cfg.rank is not None:
        try:
            done.update(factorize_word_embeddings(student, cfg.rank))
        except ValueError as exc:
            raise RecipeError(str(exc), where="prune.embeddings.rank") from None
    if cfg.trim_positions:
        done.update(trim_positions(student, max_length))
        tokenizer.model_max_length = max_length
    return done


def _targets(cfg: PruneConfig, heads0: list[int], units0: list[int]) -> tuple[int | None, int | None]:
    """Total heads / units to remove over all steps (per layer for per_layer scope); None when not counted."""
    h, f = cfg.heads, cfg.ffn
    heads = None
    if h.mode == "structured":
        heads = (
            h.count
            if h.count is not None
            else fraction_of(h.fraction, sum(heads0) if h.scope == "global" else heads0[0])
        )
    units = None
    if f.enabled:
        units = (
            f.count
            if f.count is not None
            else fraction_of(f.fraction, sum(units0) if f.scope == "global" else units0[0])
        )
    return heads, units


def _teacher_heads(
    student, teacher, mapping: list[int], init_layers: list[int] | None, layer_origin: list[int]
):
    """Explicit head matching when each student layer was copied from the teacher layer it is matched to,
    so surviving head h is still the teacher's head h; otherwise None (head-averaged maps)."""
    if init_layers is None:
        return None
    if any(init_layers[o] != mapping[i] for i, o in enumerate(layer_origin)):
        return None
    if student.config.num_attention_heads != teacher.config.num_attention_heads:
        return None
    return surviving_heads(student.config)


def trim_for_student(prune: PruneConfig, student, tokenizer, data, max_length: int, log=lambda _m: None):
    """Trim the vocabulary when asked; returns the student's tokenizer and the record of what was kept. A
    trimming that would read the training texts differently (or a tokenizer without trimming rules) keeps the
    full vocabulary, logs why and records it."""
    if not prune.vocab.enabled:
        return tokenizer, None
    texts, pairs = data.texts("train")
    before = len(tokenizer.get_vocab())
    record = {"before": before, "after": before, "min_frequency": prune.vocab.min_frequency}
    try:
        keep = kept_token_ids(tokenizer, texts, pairs, max_length, prune.vocab.min_frequency)
        keep = sorted(set(keep) | model_kept_ids(student.config))
        tokenizer = trim_vocabulary(student, tokenizer, keep, texts, pairs, max_length)
    except VocabTrimError as exc:
        log(f"warning: {exc}; keeping the full vocabulary")
        return tokenizer, {**record, "kept_full": str(exc)}
    return tokenizer, {**record, "after": len(keep)}


def run_classic(cfg: PruneStageConfig, inputs: PruneInputs, ctx: StageContext, out_dir: Path) -> PruneRecord:
    """A BiLSTM / TextCNN student has no heads or FFN units: only its vocabulary is trimmed, then one recovery
    distillation teaches it the new tokenisation."""
    from transformers import AutoTokenizer

    student = load_saved_classifier(inputs.student_dir)
    teacher = load_saved_classifier(inputs.teacher_dir)
    teacher_tokenizer = AutoTokenizer.from_pretrained(inputs.teacher_dir)
    params0 = count_parameters(student)
    tokenizer, vocab = trim_for_student(
        cfg.prune,
        student,
        AutoTokenizer.from_pretrained(inputs.student_dir),
        ctx.data,
        ctx.max_length,
        ctx.log,
    )
    rec = None
    if cfg.prune.recovery is not None:
        pair = DistillPair(student, teacher, tokenizer, teacher_tokenizer_for(tokenizer, teacher_tokenizer))
        recovery = cfg.distill.model_copy(update={"training": cfg.prune.recovery})
        rec = distill(recovery, pair, ctx.with_seed(ctx.seed + 1), desc="recover", cache_dir=out_dir)
    student = ctx.accelerator.unwrap_model(student).to("cpu").eval()
    if ctx.is_main_process:
        student.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
    return {
        "train_precision": precision_name(ctx.accelerator),
        "params_before": params0,
        "params_after": count_parameters(student),
        "vocab": vocab,
        "steps": [],
        "validation": rec["validation"] if rec else None,
    }


@dataclass
class PruneState:
    """The student between pruning rounds, and what the rounds have done to it so far."""

    student: torch.nn.Module
    heads0: list[int]  # heads per layer before pruning
    units0: list[int]  # feed-forward units per layer before pruning
    params0: int
    layer_origin: list[int]  # the original student layer each remaining layer was
    removed_heads: int = 0  # counted as the targets count them (per layer for a per_layer scope)
    removed_units: int = 0
    first_scores: dict | None = None  # scores over the original heads and units, for the heat map


@dataclass
class RecoveryPlan:
    """What every recovery round distils from: the teacher, how each model reads the text, the teacher layer
    each original student layer is matched to, and the teacher's outputs kept across rounds."""

    teacher: torch.nn.Module
    tokenizer: object  # the student's (trimmed when prune.vocab is enabled)
    teacher_tokenizer: object | None  # set when the teacher reads other tokens than the student
    mapping: list[int]
    init_layers: list[int] | None
    memory: TeacherMemory | None = None


def score(state: PruneState, batches: list[dict], prune: PruneConfig) -> tuple[list, list]:
    """Head and unit importance of the student as it is now; the first round's scores are kept."""
    head_scores, unit_scores = importance(state.student, batches, prune.importance)
    if state.first_scores is None:
        state.first_scores = {
            "heads": [s.tolist() for s in head_scores],
            "units": [s.tolist() for s in unit_scores],
        }
    return head_scores, unit_scores


def remove(state: PruneState, prune: PruneConfig, step: int, totals: tuple, scores: tuple) -> dict:
    """Remove round ``step``'s share of ``totals`` (see _targets), least important first; the round's record."""
    (total_heads, total_units), (head_scores, unit_scores) = totals, scores
    n_h = None if total_heads is None else step_target(total_heads, step, prune.steps, state.removed_heads)
    n_u = None if total_units is None else step_target(total_units, step, prune.steps, state.removed_units)
    drop_h = select_heads(head_scores, prune.heads, n_h)
    drop_u = select_units(unit_scores, prune.ffn, n_u)
    student = state.student
    alive_before = surviving_heads(student.config)
    surgery.remove_units(student, drop_u)
    surgery.remove_heads(student, drop_h)
    emptied = [i for i, n in enumerate(head_counts(student)) if n == 0]
    surgery.drop_layers(student, emptied)
    dropped = [state.layer_origin[i] for i in emptied]
    state.layer_origin = [o for i, o in enumerate(state.layer_origin) if i not in set(emptied)]
    per_layer = prune.heads.scope in ("per_layer", "uniform") and prune.heads.mode == "structured"
    state.removed_heads += (
        max(len(v) for v in drop_h.values()) if per_layer else sum(len(v) for v in drop_h.values())
    )
    state.removed_units += (
        max(len(v) for v in drop_u.values())
        if prune.ffn.scope == "per_layer"
        else sum(len(v) for v in drop_u.values())
    )
    return {
        "step": step,
        "removed_heads": {str(i): [alive_before[i][h] for h in hs] for i, hs in drop_h.items() if hs},
        "removed_units": {str(i): len(us) for i, us in drop_u.items() if us},
        "dropped_layers": dropped,
        "heads_per_layer": head_counts(student),
        "units_per_layer": ffn_sizes(student),
    }


RECOVERY_FIELDS = (
    "validation",
    "steps",
    "train_seconds",
    "layer_mapping",
    "aligned_examples",
    "teacher_memory",
)


def recover(
    cfg: PruneStageConfig, plan: RecoveryPlan, state: PruneState, ctx: StageContext, step: int
) -> dict:
    """Distil the pruned student (the recipe's losses, the recovery's training) over the layers it has left;
    what the round's record adds. The teacher's outputs stay in ``plan.memory`` for the next round."""
    prune = cfg.prune
    recovery = cfg.distill.model_copy(
        update={"training": prune.recovery, "layer_mapping": [plan.mapping[o] for o in state.layer_origin]}
    )
    t_heads = _teacher_heads(
        state.student, plan.teacher, recovery.layer_mapping, plan.init_layers, state.layer_origin
    )
    pair = DistillPair(
        state.student,
        plan.teacher,
        plan.tokenizer,
        teacher_tokenizer=plan.teacher_tokenizer,
        teacher_heads=t_heads,
        teacher_memory=plan.memory,
    )
    rec = distill(recovery, pair, ctx.with_seed(ctx.seed + step), desc=f"recover {step}/{prune.steps}")
    plan.memory = pair.teacher_memory
    return {
        "recovery": {k: rec[k] for k in RECOVERY_FIELDS if k in rec},
        "attention_matching": "explicit heads" if t_heads is not None else "head-averaged when counts differ",
    }


def record(
    state: PruneState,
    prune: PruneConfig,
    steps: list[dict],
    vocab: dict | None,
    embeddings: dict,
    ctx: StageContext,
) -> tuple[PruneRecord, dict]:
    """The stage's record of the pruned student, and the importance file (first scores, what was removed)."""
    student, heads0, units0, origin = state.student, state.heads0, state.units0, state.layer_origin
    alive = surviving_heads(student.config)
    result: PruneRecord = {
        "train_precision": precision_name(ctx.accelerator),
        "params_before": state.params0,
        "params_after": count_parameters(student),
        "heads_before": sum(heads0),
        "heads_after": sum(head_counts(student)),
        "units_before": sum(units0),
        "units_after": sum(ffn_sizes(student)),
        "layers": [
            {
                "layer": o,
                "heads_kept": len(alive[i]),
                "heads_total": heads0[o],
                "head_ids": alive[i],
                "units_kept": ffn_sizes(student)[i],
                "units_total": units0[o],
            }
            for i, o in enumerate(origin)
        ],
        "dropped_layers": [o for o in range(len(heads0)) if o not in origin],
        "vocab": vocab,
        "embeddings": embeddings,
        "steps": steps,
        "validation": steps[-1].get("recovery", {}).get("validation"),
    }
    scores = {
        "method": prune.importance,
        "normalisation": "per-layer L2",
        **state.first_scores,
        "pruned_heads": {str(o): sorted(set(range(heads0[o])) - set(alive[i])) for i, o in enumerate(origin)},
        "dropped_layers": result["dropped_layers"],
    }
    result["removed_head_share"] = 1 - result["heads_after"] / result["heads_before"]
    result["removed_unit_share"] = 1 - result["units_after"] / result["units_before"]
    return result, scores


def importance_batches(
    prune: PruneConfig, tokenizer, ctx: StageContext, inputs=TOKENIZER_INPUTS
) -> list[dict]:
    """The training batches importance is measured on (the same ones every round), with the ``inputs`` the
    student takes."""
    data = ctx.data
    train = EncodedSplit(tokenizer, data.splits["train"], data.label_ids("train"), ctx.max_length, inputs)
    loader = make_loader(train, prune.importance_batch_size, shuffle=True, seed=ctx.seed)
    return [b for _, b in zip(range(prune.importance_batches), loader, strict=False)]


def run(cfg: PruneStageConfig, inputs: PruneInputs, ctx: StageContext, out_dir: Path) -> PruneRecord:
    """Trim the vocabulary, then ``prune.steps`` rounds of score -> remove -> recover; saves the student."""
    from transformers import AutoTokenizer

    if is_classic(inputs.student_dir):
        return run_classic(cfg, inputs, ctx, out_dir)
    prune = cfg.prune
    student = load_saved_classifier(inputs.student_dir)
    teacher = load_saved_classifier(inputs.teacher_dir)
    teacher_tokenizer = AutoTokenizer.from_pretrained(inputs.teacher_dir)  # the teacher reads its own ids
    heads0 = head_counts(student)
    state = PruneState(
        student, heads0, ffn_sizes(student), count_parameters(student), list(range(len(heads0)))
    )
    mapping = cfg.distill.layer_mapping or evenly_spread(teacher.config.num_hidden_layers, len(heads0))
    # the vocabulary first, so that recovery teaches the student its new tokenisation
    tokenizer, vocab = trim_for_student(
        prune, student, AutoTokenizer.from_pretrained(inputs.student_dir), ctx.data, ctx.max_length, ctx.log
    )
    embeddings = shrink_embeddings(student, tokenizer, prune.embeddings, ctx.max_length)
    plan = RecoveryPlan(
        teacher, tokenizer, teacher_tokenizer_for(tokenizer, teacher_tokenizer), mapping, inputs.init_layers
    )
    batches = importance_batches(prune, tokenizer, ctx, model_inputs(student))
    totals = _targets(prune, state.heads0, state.units0)
    steps = []
    for step in range(1, prune.steps + 1):
        entry = remove(state, prune, step, totals, score(state, batches, prune))
        if prune.recovery is not None:
            entry.update(recover(cfg, plan, state, ctx, step))
            if ctx.on_recovery is not None:
                ctx.on_recovery(step, entry["recovery"].get("validation") or {})
        steps.append(entry)
    state.student = ctx.accelerator.unwrap_model(state.student).to("cpu").eval()
    result, scores = record(state, prune, steps, vocab, embeddings, ctx)
    if ctx.is_main_process:
        state.student.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        (out_dir / IMPORTANCE_FILE).write_text(json.dumps(scores, indent=1))
    return result
