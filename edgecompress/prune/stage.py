"""Prune stage: score heads and units on the distilled student, remove them physically, recover by
distillation (optionally in several steps), then trim the vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

from edgecompress.data.examples import PreparedData
from edgecompress.distill.config import DistillConfig
from edgecompress.distill.stage import distill
from edgecompress.modeling.loading import load_saved_classifier
from edgecompress.modeling.student import evenly_spread
from edgecompress.prune import surgery
from edgecompress.prune.config import PruneConfig
from edgecompress.prune.importance import importance
from edgecompress.prune.select import check_targets, fraction_of, select_heads, select_units, step_target
from edgecompress.prune.vocab import kept_token_ids, trim_vocabulary
from edgecompress.training.batching import EncodedSplit, make_loader

STAGE_VERSION = 2
IMPORTANCE_FILE = "importance.json"


def _count(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


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
    return surgery.surviving_heads(student)


def run(
    cfg: PruneConfig,
    distill_cfg: DistillConfig,
    student_dir: Path,
    teacher_dir: Path,
    data: PreparedData,
    out_dir: Path,
    accelerator,
    seed: int,
    max_length: int,
    init_layers: list[int] | None,
) -> dict:
    from transformers import AutoTokenizer

    student = load_saved_classifier(student_dir)
    teacher = load_saved_classifier(teacher_dir)
    tokenizer = teacher_tokenizer = AutoTokenizer.from_pretrained(student_dir)
    heads0, units0 = surgery.head_counts(student), surgery.ffn_sizes(student)
    check_targets(cfg, heads0, units0)
    params0 = _count(student)
    n_teacher = teacher.config.num_hidden_layers
    mapping0 = distill_cfg.layer_mapping or evenly_spread(n_teacher, len(heads0))
    layer_origin = list(range(len(heads0)))
    vocab = None
    if cfg.vocab.enabled:  # first, so that recovery teaches the student its new tokenisation
        texts, pairs = data.texts("train")
        keep = kept_token_ids(tokenizer, texts, pairs, max_length, cfg.vocab.min_frequency)
        before = len(tokenizer.get_vocab())
        tokenizer = trim_vocabulary(student, tokenizer, keep)
        vocab = {"before": before, "after": len(keep), "min_frequency": cfg.vocab.min_frequency}
    train = EncodedSplit(tokenizer, data.splits["train"], data.label_ids("train"), max_length)
    loader = make_loader(train, cfg.recovery.batch_size if cfg.recovery else 32, shuffle=True, seed=seed)
    batches = [b for _, b in zip(range(cfg.importance_batches), loader, strict=False)]
    total_heads, total_units = _targets(cfg, heads0, units0)
    removed_heads = removed_units = 0
    steps, first_scores = [], None
    for step in range(1, cfg.steps + 1):
        head_scores, unit_scores = importance(student, batches, cfg.importance)
        n_h = None if total_heads is None else step_target(total_heads, step, cfg.steps, removed_heads)
        n_u = None if total_units is None else step_target(total_units, step, cfg.steps, removed_units)
        drop_h = select_heads(head_scores, cfg.heads, n_h)
        drop_u = select_units(unit_scores, cfg.ffn, n_u)
        alive_before = surgery.surviving_heads(student)
        if first_scores is None:  # scores over the original heads, for the heat map
            first_scores = {
                "heads": [s.tolist() for s in head_scores],
                "units": [s.tolist() for s in unit_scores],
            }
        surgery.remove_units(student, drop_u)
        surgery.remove_heads(student, drop_h)
        emptied = [i for i, n in enumerate(surgery.head_counts(student)) if n == 0]
        surgery.drop_layers(student, emptied)
        dropped = [layer_origin[i] for i in emptied]
        layer_origin = [o for i, o in enumerate(layer_origin) if i not in set(emptied)]
        per_layer = cfg.heads.scope == "per_layer" and cfg.heads.mode == "structured"
        removed_heads += (
            max(len(v) for v in drop_h.values()) if per_layer else sum(len(v) for v in drop_h.values())
        )
        removed_units += (
            max(len(v) for v in drop_u.values())
            if cfg.ffn.scope == "per_layer"
            else sum(len(v) for v in drop_u.values())
        )
        record = {
            "step": step,
            "removed_heads": {str(i): [alive_before[i][h] for h in hs] for i, hs in drop_h.items() if hs},
            "removed_units": {str(i): len(us) for i, us in drop_u.items() if us},
            "dropped_layers": dropped,
            "heads_per_layer": surgery.head_counts(student),
            "units_per_layer": surgery.ffn_sizes(student),
        }
        if cfg.recovery is not None:
            recovery = distill_cfg.model_copy(
                update={"training": cfg.recovery, "layer_mapping": [mapping0[o] for o in layer_origin]}
            )
            t_heads = _teacher_heads(student, teacher, recovery.layer_mapping, init_layers, layer_origin)
            rec = distill(
                recovery,
                student,
                teacher,
                tokenizer,
                data,
                accelerator,
                seed + step,
                max_length,
                desc=f"recover {step}/{cfg.steps}",
                teacher_heads=t_heads,
                teacher_tokenizer=teacher_tokenizer if tokenizer is not teacher_tokenizer else None,
            )
            record["recovery"] = {
                k: rec[k]
                for k in ("validation", "steps", "train_seconds", "layer_mapping", "aligned_examples")
                if k in rec
            }
            record["attention_matching"] = (
                "explicit heads" if t_heads is not None else "head-averaged when counts differ"
            )
        steps.append(record)
    student = accelerator.unwrap_model(student).to("cpu").eval()
    alive = surgery.surviving_heads(student)
    result = {
        "params_before": params0,
        "params_after": _count(student),
        "heads_before": sum(heads0),
        "heads_after": sum(surgery.head_counts(student)),
        "units_before": sum(units0),
        "units_after": sum(surgery.ffn_sizes(student)),
        "layers": [
            {
                "layer": o,
                "heads_kept": len(alive[i]),
                "heads_total": heads0[o],
                "head_ids": alive[i],
                "units_kept": surgery.ffn_sizes(student)[i],
                "units_total": units0[o],
            }
            for i, o in enumerate(layer_origin)
        ],
        "dropped_layers": [o for o in range(len(heads0)) if o not in layer_origin],
        "vocab": vocab,
        "steps": steps,
        "validation": steps[-1].get("recovery", {}).get("validation"),
    }
    if accelerator.is_main_process:
        student.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        scores = {
            "method": cfg.importance,
            "normalisation": "per-layer L2",
            **first_scores,
            "pruned_heads": {
                str(o): sorted(set(range(heads0[o])) - set(alive[i])) for i, o in enumerate(layer_origin)
            },
            "dropped_layers": result["dropped_layers"],
        }
        (out_dir / IMPORTANCE_FILE).write_text(json.dumps(scores, indent=1))
    result["removed_head_share"] = 1 - result["heads_after"] / result["heads_before"]
    result["removed_unit_share"] = 1 - result["units_after"] / result["units_before"]
    return result
