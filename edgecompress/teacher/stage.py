"""Teacher stage: load the teacher and fine-tune it on the data when it has no matching head."""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F

from edgecompress.context import StageContext
from edgecompress.errors import RecipeError
from edgecompress.inputs import model_inputs
from edgecompress.modeling.loading import (
    load_classifier,
    load_config,
    load_tokenizer,
    placeholder_head_names,
    resolve,
)
from edgecompress.teacher.config import TeacherConfig
from edgecompress.training.batching import EncodedSplit, make_loader
from edgecompress.training.loop import TrainingRecord, evaluate, fit, training_record

STAGE_VERSION = 4


class TeacherRecord(TrainingRecord, total=False):
    source: str
    had_matching_head: bool
    finetuned: bool


def ce_loss(model, batch, _extras):
    labels = batch.pop("labels")
    loss = F.cross_entropy(model(**batch).logits.float(), labels)
    return loss, {"ce": float(loss.detach())}


def refuse_or_warn_placeholder_head(cfg: TeacherConfig, config, labels: list[str], log) -> None:
    """A head whose rows are named only LABEL_0, LABEL_1, ... is not taken for the data's labels: ``never`` is
    refused (nothing would train a head we cannot read), ``auto`` fine-tunes one, with one warning line. A head
    of another size is no head for these labels whatever its names (load_classifier says so)."""
    if not placeholder_head_names(config) or config.num_labels != len(labels):
        return
    rows = ", ".join(str(config.id2label[i]) for i in range(config.num_labels))
    what = f"'{cfg.model}' names its head rows only {rows}, which says nothing about which of {', '.join(labels)}"
    if cfg.finetune == "never":
        raise RecipeError(
            f"'never', but {what} each row is; set teacher.head_labels to the label of each row, in row order",
            where="teacher.finetune",
        )
    log(
        f"warning: teacher.head_labels: {what} each row is: fine-tuning a head (set head_labels to the label of "
        "each row, in row order, to use the checkpoint's head as it is)"
    )


def run(cfg: TeacherConfig, inputs: None, ctx: StageContext, out_dir: Path) -> TeacherRecord:
    """Writes ``out_dir`` (a transformers model folder with tokenizer); the data comes from ``ctx``."""
    data, accelerator = ctx.data, ctx.accelerator
    src = resolve(cfg.model, "teacher.model", cfg.revision, cfg.trust_remote_code)
    tokenizer = load_tokenizer(src)
    if cfg.head_labels is None and cfg.finetune != "always":
        refuse_or_warn_placeholder_head(cfg, load_config(src), data.labels, ctx.log)
    model, has_head = load_classifier(src, data.labels, head_labels=cfg.head_labels)
    if cfg.finetune == "never" and not has_head:
        raise RecipeError(
            f"'never', but '{cfg.model}' has no classification head for the labels {data.labels}",
            where="teacher.finetune",
        )
    inputs = model_inputs(model)  # e.g. no token_type_ids for DistilBERT, MPNet, RoBERTa
    train_split = EncodedSplit(
        tokenizer, data.splits["train"], data.label_ids("train"), ctx.max_length, inputs
    )
    val_split = EncodedSplit(
        tokenizer, data.splits["validation"], data.label_ids("validation"), ctx.max_length, inputs
    )
    val_loader = make_loader(val_split, cfg.training.eval_batch_size, shuffle=False, seed=ctx.seed)
    record: TeacherRecord = {"source": cfg.model, "had_matching_head": has_head}
    if cfg.finetune == "always" or (cfg.finetune == "auto" and not has_head):
        outcome = fit(
            accelerator,
            model,
            make_loader(train_split, cfg.training.batch_size, shuffle=True, seed=ctx.seed),
            val_loader,
            cfg.training,
            ce_loss,
            desc="fine-tune teacher",
        )
        record.update(finetuned=True, **training_record(outcome, accelerator))
    else:
        model = accelerator.prepare(model)
        record.update(
            finetuned=False,
            validation=evaluate(accelerator, model, accelerator.prepare(val_loader), len(data.labels)),
        )
        model = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model).to("cpu")
        model.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
    return record
