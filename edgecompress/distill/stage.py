"""Distillation stage: build the student from the teacher and train it with attention transfer."""

from __future__ import annotations

from pathlib import Path

import torch

from edgecompress.data.examples import PreparedData
from edgecompress.distill.config import DistillConfig, StudentConfig
from edgecompress.distill.losses import DistillationLoss
from edgecompress.errors import RecipeError
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.modeling.student import build_student, evenly_spread
from edgecompress.training.batching import EncodedSplit, PairedSplit, make_loader, token_id_map
from edgecompress.training.loop import fit

STAGE_VERSION = 1


def heads_per_layer(model: torch.nn.Module) -> list[int]:
    """Attention heads left in each layer (pruned layers may differ)."""
    cfg = model.config
    pruned = {int(k): len(v) for k, v in (getattr(cfg, "pruned_heads", None) or {}).items()}
    return [cfg.num_attention_heads - pruned.get(i, 0) for i in range(cfg.num_hidden_layers)]


def plan_matching(
    cfg: DistillConfig, student: torch.nn.Module, teacher: torch.nn.Module, teacher_heads: list | None = None
) -> list[int]:
    """The layer mapping, checked against both models before any training starts."""
    n_s, n_t = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    mapping = cfg.layer_mapping or evenly_spread(n_t, n_s)
    if len(mapping) != n_s:
        raise RecipeError(
            f"{len(mapping)} entries for a student of {n_s} layers", where="distill.layer_mapping"
        )
    bad = [m for m in mapping if not 0 <= m < n_t]
    if bad:
        raise RecipeError(
            f"teacher layer {bad[0]} does not exist (the teacher has {n_t})", where="distill.layer_mapping"
        )
    if cfg.weights.attention and cfg.head_mismatch == "refuse":
        s_heads, t_heads = heads_per_layer(student), heads_per_layer(teacher)
        for i, t in enumerate(mapping):
            explicit = teacher_heads is not None and teacher_heads[i] is not None
            if s_heads[i] != t_heads[t] and not explicit:
                raise RecipeError(
                    f"student layer {i} has {s_heads[i]} heads, teacher layer {t} has {t_heads[t]}; "
                    "set head_mismatch: average to compare head-averaged maps",
                    where="distill.head_mismatch",
                )
    return mapping


def disable_attention_dropout(model: torch.nn.Module) -> int:
    """Attention maps are returned after dropout; compared with the teacher's they would look like noise.

    Switches off dropout inside self-attention modules (BERT, RoBERTa, DistilBERT, ELECTRA naming);
    returns how many were switched off.
    """
    count = 0
    for module in model.modules():
        if type(module).__name__.endswith("SelfAttention"):
            for child in module.modules():
                if isinstance(child, torch.nn.Dropout) and child.p > 0:
                    child.p = 0.0
                    count += 1
    return count


def distill(
    cfg: DistillConfig,
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    tokenizer,
    data: PreparedData,
    accelerator,
    seed: int,
    max_length: int,
    desc: str = "distill",
    teacher_heads: list | None = None,
    teacher_tokenizer=None,
) -> dict:
    """Train ``student`` in place against ``teacher``; returns the training record. Reused by pruning recovery.

    ``tokenizer`` is the student's; give ``teacher_tokenizer`` when the teacher's differs (e.g. after
    vocabulary trimming): the teacher then reads its own tokens, see PairedSplit.
    """
    mapping = plan_matching(cfg, student, teacher, teacher_heads)
    if cfg.weights.attention:
        disable_attention_dropout(student)
    loss_module = DistillationLoss(
        cfg, mapping, student.config.hidden_size, teacher.config.hidden_size, teacher_heads
    )
    train_split = EncodedSplit(tokenizer, data.splits["train"], data.label_ids("train"), max_length)
    val_split = EncodedSplit(tokenizer, data.splits["validation"], data.label_ids("validation"), max_length)
    use_teacher = cfg.weights.uses_teacher
    aligned_share = None
    if use_teacher and teacher_tokenizer is not None:
        teacher_split = EncodedSplit(
            teacher_tokenizer, data.splits["train"], data.label_ids("train"), max_length
        )
        train_split = PairedSplit(train_split, teacher_split, token_id_map(tokenizer, teacher_tokenizer))
        aligned_share = sum(train_split.aligned) / len(train_split)
    teacher.to(accelerator.device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    want = {
        "output_attentions": loss_module.needs_attentions,
        "output_hidden_states": loss_module.needs_hidden_states,
    }

    def loss_fn(model, batch, extras):
        labels = batch.pop("labels")
        teacher_inputs, aligned = batch.pop("teacher_inputs", batch), batch.pop("aligned", None)
        teacher_out = None
        if use_teacher:
            with torch.no_grad():
                teacher_out = teacher(**teacher_inputs, **want)
        student_out = model(**batch, **want)
        module = extras[0] if extras else loss_module
        return module(student_out, teacher_out, labels, batch["attention_mask"], aligned)

    outcome = fit(
        accelerator,
        student,
        make_loader(train_split, cfg.training.batch_size, shuffle=True, seed=seed),
        make_loader(val_split, cfg.training.eval_batch_size, shuffle=False, seed=seed),
        cfg.training,
        loss_fn,
        num_labels=len(data.labels),
        desc=desc,
        extra_modules=(loss_module,) if any(True for _ in loss_module.parameters()) else (),
    )
    return {
        "layer_mapping": mapping,
        "loss_weights": cfg.weights.model_dump(),
        "attention_loss": cfg.attention_loss,
        "temperature": cfg.temperature,
        "validation": outcome.best_metrics,
        "best_step": outcome.best_step,
        "steps": outcome.steps,
        "train_seconds": round(outcome.seconds, 1),
        "processes": accelerator.num_processes,
        "examples_per_process": outcome.examples_per_process,
        "history": outcome.history,
        **({"aligned_examples": round(aligned_share, 4)} if aligned_share is not None else {}),
    }


def _same_vocab(a, b) -> bool:
    return a.get_vocab() == b.get_vocab()


def run(
    student_cfg: StudentConfig,
    cfg: DistillConfig,
    data: PreparedData,
    teacher_dir: Path,
    out_dir: Path,
    accelerator,
    seed: int,
    max_length: int,
) -> dict:
    teacher_src = resolve(str(teacher_dir), "teacher")
    teacher, _ = load_classifier(teacher_src, data.labels)
    tokenizer = load_tokenizer(teacher_src)
    student, built = build_student(teacher, student_cfg, data.labels)
    student_tok, teacher_tok = tokenizer, None
    if student_cfg.model is not None:
        own = load_tokenizer(resolve(student_cfg.model, "student.model"))
        if not _same_vocab(own, tokenizer):  # the teacher reads its own tokens; see PairedSplit
            student_tok, teacher_tok = own, tokenizer
    record = {
        "student": built,
        **distill(
            cfg,
            student,
            teacher,
            student_tok,
            data,
            accelerator,
            seed,
            max_length,
            teacher_tokenizer=teacher_tok,
        ),
    }
    if accelerator.is_main_process:
        student = accelerator.unwrap_model(student).to("cpu")
        student.save_pretrained(out_dir, safe_serialization=True)
        student_tok.save_pretrained(out_dir)
    return record
