"""Distillation stage: build the student from the teacher and train it with attention transfer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgecompress.context import StageContext
from edgecompress.distill.augment import UNLABELLED, augmented_examples
from edgecompress.distill.config import DistillConfig, StudentStageConfig
from edgecompress.distill.losses import DistillationLoss
from edgecompress.distill.memory import TeacherMemory, input_keys
from edgecompress.errors import RecipeError
from edgecompress.inputs import model_inputs
from edgecompress.modeling.classic import ClassicClassifier, build_classic
from edgecompress.modeling.encoders import adapter_for
from edgecompress.modeling.layers import heads_per_layer
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.modeling.student import build_student, evenly_spread
from edgecompress.training.batching import EncodedSplit, PairedSplit, make_loader, token_id_map
from edgecompress.training.loop import TrainingRecord, fit, training_record

STAGE_VERSION = 5


@dataclass(frozen=True)
class DistillInputs:
    teacher_dir: Path


@dataclass
class DistillPair:
    """The models one distillation trains and reads, and how each reads the text.

    ``tokenizer`` is the student's; ``teacher_tokenizer`` is set when the teacher's differs (e.g. after
    vocabulary trimming): the teacher then reads its own tokens, see PairedSplit. ``teacher_heads[i]`` names
    the teacher heads matched one to one by student layer i's heads (None: by position or head-averaged).
    """

    student: torch.nn.Module
    teacher: torch.nn.Module
    tokenizer: object
    teacher_tokenizer: object | None = None
    teacher_heads: list | None = None
    teacher_memory: TeacherMemory | None = None  # shared by distillations over the same transfer set


class DistillRecord(TrainingRecord, total=False):
    student: dict  # how the student was built (build_student's description)
    layer_mapping: list[int]
    loss_weights: dict[str, float]
    attention_loss: str
    temperature: float
    aligned_examples: float  # share of examples both tokenizers split alike (trimmed vocabularies)
    transfer_set: dict  # examples trained on (augmented copies among them) and how the teacher was read


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
        s_heads, t_heads = heads_per_layer(student.config), heads_per_layer(teacher.config)
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

    Switches off dropout inside each layer's attention module (where the family's adapter says it is: BERT's
    ``attention.self``, DistilBERT's ``attention``); returns how many were switched off.
    """
    adapter = adapter_for(model, "distill", "student")
    count = 0
    slot = "attn_dropout" if adapter.slots.attn_dropout else "attention"
    if adapter.slots.attn_dropout_p:  # a float the attention function reads (ModernBERT)
        for layer in adapter.layers(model):
            attention = adapter.part(layer, "attention")
            if getattr(attention, adapter.slots.attn_dropout_p) > 0:
                setattr(attention, adapter.slots.attn_dropout_p, 0.0)
                count += 1
        return count
    for layer in adapter.layers(model):
        for child in adapter.part(layer, slot).modules():
            if isinstance(child, torch.nn.Dropout) and child.p > 0:
                child.p = 0.0
                count += 1
    return count


class CachedTeacher:
    """The teacher's outputs read from the batch (computed once for the whole transfer set)."""

    def __init__(self, logits: torch.Tensor, cls: torch.Tensor | None):
        self.logits, self.cls = logits, cls


def transfer_set(cfg: DistillConfig, data, tokenizer, seed: int) -> tuple[list, list[int]]:
    """The training examples and, with ``augmentation``, their teacher-only copies; and their label ids."""
    examples, labels = list(data.splits["train"]), data.label_ids("train")
    if cfg.augmentation is None:
        return examples, labels
    copies = augmented_examples(examples, cfg.augmentation, tokenizer.mask_token or "[MASK]", seed)
    return examples + copies, labels + [UNLABELLED] * len(copies)


def last_hidden(teacher, hidden_states) -> torch.Tensor:
    """The teacher's last layer as its head reads it (ModernBERT applies final_norm after hidden_states)."""
    from edgecompress.modeling.encoders import SUPPORTED

    model_type = getattr(teacher.config, "model_type", None)
    if model_type not in SUPPORTED:
        return hidden_states[-1]
    return SUPPORTED.get(model_type).last_hidden(teacher, hidden_states)


@torch.no_grad()
def teacher_outputs(teacher, split: EncodedSplit, accelerator, with_cls: bool, batch_size: int = 128) -> dict:
    """The teacher's logits (and last [CLS] state) for every example of ``split``, computed at the training precision (autocast); the logits are kept in fp32, the [CLS] states in fp16 (half the memory; they are a regression target)."""
    logits, cls = None, None
    for index, batch in split.batches_in_order(batch_size):
        batch = {k: v.to(accelerator.device) for k, v in batch.items() if k != "labels"}
        with accelerator.autocast():
            out = teacher(**batch, output_hidden_states=with_cls)
        if logits is None:
            logits = np.zeros((len(split), out.logits.shape[-1]), np.float32)
            cls = np.zeros((len(split), teacher.config.hidden_size), np.float16) if with_cls else None
        logits[index] = out.logits.float().cpu().numpy()
        if with_cls:
            cls[index] = last_hidden(teacher, out.hidden_states)[:, 0].float().cpu().numpy()
    return {"teacher_logits": logits} | ({"teacher_cls": cls} if with_cls else {})


def distill(
    cfg: DistillConfig,
    pair: DistillPair,
    ctx: StageContext,
    desc: str = "distill",
    cache_dir: Path | None = None,
) -> DistillRecord:
    """Train ``pair.student`` in place against ``pair.teacher``; returns the training record. Reused by the
    pruning recovery.

    When the losses need only the teacher's logits (and sentence vector) - a BiLSTM / TextCNN student, or no
    attention and hidden-state terms - the teacher labels the whole transfer set once (batched) instead of
    every epoch; ``cache_dir`` keeps those outputs (and the augmented texts) for the record."""
    data, accelerator, max_length = ctx.data, ctx.accelerator, ctx.max_length
    student, teacher = pair.student, pair.teacher
    classic = isinstance(student, ClassicClassifier)
    mapping = [] if classic else plan_matching(cfg, student, teacher, pair.teacher_heads)
    if cfg.weights.attention:
        disable_attention_dropout(student)
    width = student.pooled_size if classic else student.config.hidden_size
    loss_module = DistillationLoss(cfg, mapping, width, teacher.config.hidden_size, pair.teacher_heads)
    teacher_tokenizer = pair.teacher_tokenizer or pair.tokenizer
    examples, labels = transfer_set(cfg, data, teacher_tokenizer, ctx.seed)
    teacher_inputs = model_inputs(teacher)
    # without a teacher tokenizer one split feeds both models: it carries what either takes
    inputs = model_inputs(student) + (teacher_inputs if pair.teacher_tokenizer is None else ())
    train_split = EncodedSplit(pair.tokenizer, examples, labels, max_length, inputs)
    val_split = EncodedSplit(
        pair.tokenizer, data.splits["validation"], data.label_ids("validation"), max_length, inputs
    )
    use_teacher = cfg.weights.uses_teacher
    cached = use_teacher and not cfg.weights.attention and (classic or not cfg.weights.hidden)
    aligned_share = None
    teacher.to(accelerator.device).eval()
    if cached:
        teacher_split = (
            train_split
            if pair.teacher_tokenizer is None
            else EncodedSplit(pair.teacher_tokenizer, examples, labels, max_length, teacher_inputs)
        )
        outputs = teacher_outputs(teacher, teacher_split, accelerator, with_cls=bool(cfg.weights.hidden))
        train_split.attach(outputs)
        if cache_dir is not None and accelerator.is_main_process:
            np.savez_compressed(cache_dir / "teacher_outputs.npz", **outputs)
    elif use_teacher and pair.teacher_tokenizer is not None:
        teacher_split = EncodedSplit(pair.teacher_tokenizer, examples, labels, max_length, teacher_inputs)
        train_split = PairedSplit(
            train_split, teacher_split, token_id_map(pair.tokenizer, pair.teacher_tokenizer)
        )
        aligned_share = sum(train_split.aligned) / len(train_split)
    memory = None
    if use_teacher and not cached and cfg.teacher_memory_mb:
        layers = (
            (mapping if cfg.weights.attention else []),
            ([t + 1 for t in mapping] if cfg.weights.hidden else []),
        )
        memory = pair.teacher_memory
        if memory is None or not memory.covers(*layers):
            memory = TeacherMemory(cfg.teacher_memory_mb, *layers)
    if cfg.augmentation is not None and cache_dir is not None and accelerator.is_main_process:
        with open(cache_dir / "transfer_set.jsonl", "w") as fh:
            for ex in examples[len(data.splits["train"]) :]:
                fh.write(json.dumps({"text": ex.text, "text_pair": ex.text_pair}) + "\n")
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
        if cached:
            teacher_out = CachedTeacher(batch.pop("teacher_logits"), batch.pop("teacher_cls", None))
        elif use_teacher:
            width, n_layers = teacher_inputs["input_ids"].shape[1], teacher.config.num_hidden_layers
            keys = input_keys(teacher_inputs) if memory is not None else None
            teacher_out = memory.recall(keys, width, n_layers) if memory is not None else None
            if teacher_out is None:  # at the training precision (the student's forward is autocast)
                with torch.no_grad(), accelerator.autocast():
                    teacher_out = teacher(**teacher_inputs, **want)
                if memory is not None:
                    memory.keep(keys, teacher_out, teacher_inputs["attention_mask"])
        student_out = model(**batch, **want)
        module = extras[0] if extras else loss_module
        return module(student_out, teacher_out, labels, batch["attention_mask"], aligned)

    outcome = fit(
        accelerator,
        student,
        make_loader(train_split, cfg.training.batch_size, shuffle=True, seed=ctx.seed),
        make_loader(val_split, cfg.training.eval_batch_size, shuffle=False, seed=ctx.seed),
        cfg.training,
        loss_fn,
        desc=desc,
        extra_modules=(loss_module,) if any(True for _ in loss_module.parameters()) else (),
    )
    record: DistillRecord = {
        "layer_mapping": mapping,
        "loss_weights": cfg.weights.model_dump(),
        "attention_loss": cfg.attention_loss,
        "temperature": cfg.temperature,
        **training_record(outcome, accelerator),
    }
    if aligned_share is not None:
        record["aligned_examples"] = round(aligned_share, 4)
    record["transfer_set"] = {
        "examples": len(examples),
        "augmented": len(examples) - len(data.splits["train"]),
        "teacher_outputs": "computed once" if cached else ("every step" if use_teacher else "not used"),
    }
    if memory is not None:
        record["teacher_memory"] = memory.record()
        pair.teacher_memory = memory
    return record


def teacher_tokenizer_for(student_tokenizer, teacher_tokenizer):
    """The teacher's tokenizer when its vocabulary differs from the student's (a ``student.model`` of its own,
    or a trimmed vocabulary), so that the teacher reads its own token ids (see PairedSplit); None when both
    read the same ids."""
    return None if student_tokenizer.get_vocab() == teacher_tokenizer.get_vocab() else teacher_tokenizer


def run(cfg: StudentStageConfig, inputs: DistillInputs, ctx: StageContext, out_dir: Path) -> DistillRecord:
    """Build the student from the teacher in ``inputs.teacher_dir``, distil it, save it to ``out_dir``."""
    teacher_src = resolve(str(inputs.teacher_dir), "teacher")
    teacher, _ = load_classifier(teacher_src, ctx.data.labels)
    tokenizer = load_tokenizer(teacher_src)
    samples = None
    if cfg.student.changes_width and cfg.student.width_init == "teacher":  # text for the principal directions
        labels = ctx.data.label_ids("train")
        split = EncodedSplit(
            tokenizer, ctx.data.splits["train"], labels, ctx.max_length, model_inputs(teacher)
        )
        loader = make_loader(split, 32, shuffle=True, seed=ctx.seed)
        samples = [b for _, b in zip(range(16), loader, strict=False)]
    if cfg.student.is_classic:
        student, built = build_classic(cfg.student, teacher, ctx.data.labels, tokenizer.pad_token_id or 0)
    else:
        student, built = build_student(teacher, cfg.student, ctx.data.labels, samples)
    pair = DistillPair(student, teacher, tokenizer)
    if cfg.student.model is not None:
        own = load_tokenizer(resolve(cfg.student.model, "student.model"))
        pair = DistillPair(student, teacher, own, teacher_tokenizer=teacher_tokenizer_for(own, tokenizer))
    record: DistillRecord = {"student": built, **distill(cfg.distill, pair, ctx, cache_dir=out_dir)}
    if ctx.accelerator.is_main_process:
        student = ctx.accelerator.unwrap_model(student).to("cpu")
        student.save_pretrained(out_dir, safe_serialization=True)
        pair.tokenizer.save_pretrained(out_dir)
    return record
