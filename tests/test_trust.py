"""Training that learns the right targets, and caches that notice a change (the "trust" issue, findings 4-7).

Each test names the finding it covers; each failed on the code before its fix (see the commit messages).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tiny_bert, stage_context, synthetic_rows, write_csv

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.distill import stage as distill_stage
from edgecompress.distill.config import AugmentationConfig, DistillConfig, StudentConfig
from edgecompress.distill.memory import input_keys
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.modeling.student import build_student
from edgecompress.training.accel import make_accelerator
from edgecompress.training.config import TrainingConfig

QUIET = {"log": lambda _m: None}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """60 labelled rows and a random 2-layer teacher with a head (no fine-tuning needed to read outputs)."""
    root = tmp_path_factory.mktemp("small")
    csv = write_csv(root / "d.csv", synthetic_rows(60))
    data = prepare(DataConfig(source="csv", path=str(csv), group_column="movie", max_length=16), 0)
    make_tiny_bert(root / "teacher", layers=2, with_head=True)
    src = resolve(str(root / "teacher"), "teacher.model")
    teacher, _ = load_classifier(src, data.labels)
    return data, teacher.eval(), load_tokenizer(src)


# --- 4. the teacher memory is keyed by what the teacher read ------------------------------------------


class TeacherTargets:
    """What the losses were handed as the teacher's logits, beside the inputs of that step."""

    def __init__(self, monkeypatch, student):
        self.inputs, self.logits = [], []
        targets = self

        class Recording(distill_stage.DistillationLoss):
            def forward(self, student_out, teacher_out, *args, **kwargs):
                targets.logits.append(teacher_out.logits.detach().float().clone())
                return super().forward(student_out, teacher_out, *args, **kwargs)

        def capture(module, _args, kwargs):
            if module.training:  # a training step (validation forwards run in eval mode)
                keys = ("input_ids", "attention_mask", "token_type_ids")
                self.inputs.append({k: kwargs[k].clone() for k in keys if k in kwargs})

        monkeypatch.setattr(distill_stage, "DistillationLoss", Recording)
        student.register_forward_pre_hook(capture, with_kwargs=True)

    def worst_error(self, teacher) -> float:
        """Largest difference between the logits the losses got and the teacher's on the same inputs."""
        assert self.inputs and len(self.inputs) == len(self.logits)
        with torch.no_grad():
            return max(
                float((teacher(**inputs).logits - got).abs().max())
                for inputs, got in zip(self.inputs, self.logits, strict=True)
            )


def _rounds(small, monkeypatch, augmentation):
    """Two distillations sharing one teacher memory, as the prune stage's recovery rounds do: round 1 for two
    epochs from seed 1, round 2 for one epoch from seed 2. Returns the spy and both records."""
    data, teacher, tok = small
    student, _ = build_student(teacher, StudentConfig(num_layers=1), data.labels)
    spy = TeacherTargets(monkeypatch, student)
    acc = make_accelerator("cpu", "no", 0)
    ctx = stage_context(data, accelerator=acc)
    records = []
    pair = distill_stage.DistillPair(student, teacher, tok)
    for seed, epochs in ((1, 2), (2, 1)):
        cfg = DistillConfig(
            training=TrainingConfig(epochs=epochs, batch_size=16, learning_rate=1e-3, evals_per_epoch=1),
            augmentation=augmentation,
            teacher_memory_mb=64,
        )
        records.append(distill_stage.distill(cfg, pair, ctx.with_seed(seed)))
        pair = distill_stage.DistillPair(student, teacher, tok, teacher_memory=pair.teacher_memory)
    return spy, records


def test_memory_never_recalls_the_outputs_of_other_texts(small, monkeypatch):
    """Finding 4: with augmentation, round 2's copies are other texts at the same positions; the losses must
    get the teacher's outputs for the texts of round 2 (recalled by position they were round 1's)."""
    spy, (first, second) = _rounds(small, monkeypatch, AugmentationConfig(copies=1, mask_prob=0.3))
    assert spy.worst_error(small[1]) < 1e-5
    assert first["teacher_memory"]["batches_from_memory"] > 0  # epoch 2 of round 1 recalled its own texts
    # round 2 read its new copies with the teacher
    assert (
        second["teacher_memory"]["batches_read_by_the_teacher"]
        > first["teacher_memory"]["batches_read_by_the_teacher"]
    )


def test_memory_still_saves_the_teacher_forward_without_augmentation(small, monkeypatch):
    """Finding 4, the speed-up kept: the same texts in later epochs and rounds come from memory."""
    spy, (first, second) = _rounds(small, monkeypatch, None)
    per_epoch = math.ceil(len(small[0].splits["train"]) / 16)
    assert first["teacher_memory"]["batches_read_by_the_teacher"] == per_epoch  # epoch 1 only
    assert first["teacher_memory"]["batches_from_memory"] == per_epoch  # epoch 2
    assert second["teacher_memory"]["batches_read_by_the_teacher"] == per_epoch  # nothing new in round 2
    assert second["teacher_memory"]["batches_from_memory"] == 2 * per_epoch
    assert spy.worst_error(small[1]) < 1e-5


def test_memory_keys_are_the_real_tokens():
    """Padding does not change a key; another token or token type does."""
    ids = torch.tensor([[4, 9, 5, 0, 0], [4, 9, 5, 7, 0], [4, 9, 5, 0, 0]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    types[2, 2] = 1
    keys = input_keys({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    narrow = input_keys(
        {"input_ids": ids[:1, :3], "attention_mask": mask[:1, :3], "token_type_ids": types[:1, :3]}
    )
    assert keys[0] == narrow[0] and len({keys[0], keys[1], keys[2]}) == 3


# --- 5. the prune stage's teacher reads its own tokens ----------------------------------------------------


def _permuted_tokenizer(folder, teacher_dir):
    """The teacher's word-pieces in another order: the same texts, other token ids."""
    from transformers import AutoTokenizer, BertTokenizerFast

    vocab = list(AutoTokenizer.from_pretrained(teacher_dir).get_vocab())
    specials = [t for t in vocab if t.startswith("[")]
    words = sorted((t for t in vocab if not t.startswith("[")), reverse=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(specials + words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    return tok


def _student_with_own_tokenizer(kind, teacher, data, folder, teacher_dir):
    from transformers import BertConfig, BertForSequenceClassification

    from edgecompress.modeling.classic import build_classic

    tok = _permuted_tokenizer(folder, teacher_dir)
    if kind == "textcnn":
        cfg = StudentConfig(architecture="textcnn", cnn={"filters": 8})
        student, _ = build_classic(cfg, teacher, data.labels, tok.pad_token_id)
    else:
        config = BertConfig(
            vocab_size=len(tok.get_vocab()),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
            num_labels=2,
            id2label=dict(enumerate(data.labels)),
            label2id={lbl: i for i, lbl in enumerate(data.labels)},
        )
        student = BertForSequenceClassification(config)
    student.save_pretrained(folder, safe_serialization=True)


@pytest.mark.parametrize("kind", ["transformer", "textcnn"])
def test_pruning_recovery_gives_the_teacher_its_own_token_ids(kind, small, tmp_path, monkeypatch):
    """Finding 5: a student with a tokenizer of its own (``student.model``) is saved with it; the prune stage
    reloaded that as the teacher's tokenizer, so during recovery the teacher read the student's ids."""
    from edgecompress.distill.config import LossWeights
    from edgecompress.prune import stage as prune_stage
    from edgecompress.prune.config import PruneConfig, PruneStageConfig

    data, teacher, teacher_tok = small
    teacher_dir = tmp_path / "teacher"
    teacher.save_pretrained(teacher_dir, safe_serialization=True)
    teacher_tok.save_pretrained(teacher_dir)
    _student_with_own_tokenizer(kind, teacher, data, tmp_path / "student", teacher_dir)
    texts, _ = data.texts("train")
    teacher_rows = {tuple(ids) for ids in teacher_tok(texts, truncation=True, max_length=16)["input_ids"]}
    read = []

    def recording(cfg, pair, *args, **kwargs):
        def capture(_module, _args, kw):
            for ids, mask in zip(kw["input_ids"], kw["attention_mask"], strict=True):
                read.append(tuple(ids[: int(mask.sum())].tolist()))

        pair.teacher.register_forward_pre_hook(capture, with_kwargs=True)
        return real_distill(cfg, pair, *args, **kwargs)

    real_distill = prune_stage.distill
    monkeypatch.setattr(prune_stage, "distill", recording)
    recovery = {"max_steps": 2, "batch_size": 16, "evals_per_epoch": 1}
    if kind == "textcnn":  # a classic student: only its vocabulary is pruned, no attention transfer
        prune = PruneConfig(vocab={"enabled": True}, recovery=recovery)
        distill = DistillConfig(weights=LossWeights(attention=0))
    else:
        prune = PruneConfig(
            heads={"mode": "structured", "fraction": 0.5}, importance_batches=1, recovery=recovery
        )
        distill = DistillConfig()
    inputs = prune_stage.PruneInputs(tmp_path / "student", teacher_dir, None)
    ctx = stage_context(data, accelerator=make_accelerator("cpu", "no", 0))
    (tmp_path / "out").mkdir()
    prune_stage.run(PruneStageConfig(prune=prune, distill=distill), inputs, ctx, tmp_path / "out")
    assert read and set(read) <= teacher_rows
