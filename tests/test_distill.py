"""Distillation losses and the distillation stage on a tiny teacher."""

from __future__ import annotations

import pytest
import torch
from conftest import kl_to_teacher, stage_context, tiny_recipe

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.distill.config import DistillConfig, LossWeights, StudentConfig
from edgecompress.distill.losses import (
    DistillationLoss,
    attention_transfer_loss,
    hidden_state_loss,
    soft_target_loss,
)
from edgecompress.distill.stage import DistillPair, distill, plan_matching
from edgecompress.errors import RecipeError
from edgecompress.export.onnx import torch_logits
from edgecompress.modeling.loading import load_classifier, load_tokenizer, resolve
from edgecompress.modeling.student import build_student
from edgecompress.teacher.stage import ce_loss
from edgecompress.training.accel import make_accelerator
from edgecompress.training.batching import EncodedSplit, make_loader
from edgecompress.training.config import TrainingConfig
from edgecompress.training.loop import fit


def _att(b=2, h=4, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(b, h, n, n, generator=g), -1)


def test_soft_target_loss_zero_iff_equal():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    assert soft_target_loss(logits, logits, 2.0).abs() < 1e-6
    # the definition, computed apart: T^2 * mean over examples of KL(teacher || student) at temperature T
    student, teacher = logits.flip(-1), logits
    expected = 4.0 * kl_to_teacher((teacher / 2).numpy(), (student / 2).numpy())
    assert expected > 0.01
    assert float(soft_target_loss(student, teacher, 2.0)) == pytest.approx(expected, rel=1e-5)


def test_soft_target_loss_scales_with_t_squared():
    s, t = torch.randn(8, 2), torch.randn(8, 2)
    # T^2 keeps gradient magnitudes comparable; at high T the KL itself shrinks ~1/T^2
    assert float(soft_target_loss(s, t, 10.0)) == pytest.approx(float(soft_target_loss(s, t, 20.0)), rel=0.1)


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_attention_loss_zero_for_identical_maps_and_ignores_padding(kind):
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    s, t = _att(seed=1), _att(seed=2)
    assert attention_transfer_loss(t, t.clone(), mask, kind) < 1e-6
    base = attention_transfer_loss(s, t, mask, kind)
    assert float(base) == pytest.approx(_attention_loss_by_hand(s, t, mask, kind), rel=1e-5)
    # changing padded query rows of the first example must not change the loss
    s2 = s.clone()
    s2[0, :, 3:, :] = torch.softmax(torch.randn(4, 2, 5), -1)
    assert torch.allclose(attention_transfer_loss(s2, t, mask, kind), base)


def _attention_loss_by_hand(student, teacher, mask, kind: str) -> float:
    """The documented loss row by row: over every head and every real query row, KL(teacher row || student
    row) or the squared error, both summed over the real keys; the mean of those rows."""
    rows = []
    for b in range(student.shape[0]):
        real = [i for i in range(mask.shape[1]) if mask[b, i]]
        for h in range(student.shape[1]):
            for q in real:
                t, s = teacher[b, h, q, real].double(), student[b, h, q, real].double()
                rows.append(float((t * (t.log() - s.log())).sum() if kind == "kl" else ((s - t) ** 2).sum()))
    return sum(rows) / len(rows)


def test_attention_loss_head_mismatch_averages_heads():
    mask = torch.ones(2, 5, dtype=torch.long)
    t = _att(h=4, seed=3)
    s = t.mean(1, keepdim=True).expand(-1, 2, -1, -1)  # 2 heads equal to the teacher's head average
    assert attention_transfer_loss(s, t, mask, "mse") < 1e-10


def test_attention_loss_explicit_teacher_heads():
    mask = torch.ones(2, 5, dtype=torch.long)
    t = _att(h=4, seed=4)
    assert attention_transfer_loss(t[:, [1, 3]], t, mask, "kl", teacher_heads=[1, 3]) < 1e-6
    assert attention_transfer_loss(t[:, [1, 3]], t, mask, "kl", teacher_heads=[0, 2]) > 1e-3


def test_hidden_state_loss_masks_padding():
    mask = torch.tensor([[1, 1, 0]])
    a, b = torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)
    b[0, 2] = 5.0  # only in the padded position
    assert hidden_state_loss(a, b, mask) == 0
    b[0, 0] = 1.0
    assert hidden_state_loss(a, b, mask) == pytest.approx(0.5)


def test_projection_only_when_widths_differ():
    cfg = DistillConfig()
    assert DistillationLoss(cfg, [0, 1], 32, 32).projections is None
    proj = DistillationLoss(cfg, [0, 1], 16, 32).projections
    assert proj is not None and proj[0].in_features == 16 and proj[0].out_features == 32
    assert DistillationLoss(DistillConfig(weights=LossWeights(hidden=0)), [0], 16, 32).projections is None


@pytest.fixture()
def tiny_setup(tiny_teacher, tiny_csv):
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), group_column="movie", max_length=16), 0)
    src = resolve(str(tiny_teacher), "teacher.model")
    teacher, _ = load_classifier(src, data.labels)
    return data, teacher, load_tokenizer(src)


def test_refuse_head_mismatch_before_training(tiny_setup):
    data, teacher, _ = tiny_setup
    student, _ = build_student(
        teacher,
        StudentConfig(num_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64),
        data.labels,
    )
    with pytest.raises(
        RecipeError, match="distill.head_mismatch: student layer 0 has 2 heads, teacher layer 0 has 4"
    ):
        plan_matching(DistillConfig(head_mismatch="refuse"), student, teacher)
    assert plan_matching(DistillConfig(), student, teacher) == [0, 3]
    with pytest.raises(RecipeError, match="distill.layer_mapping: teacher layer 9 does not exist"):
        plan_matching(DistillConfig(layer_mapping=[0, 9]), student, teacher)


def test_distillation_trains_the_student_towards_the_teacher(tiny_setup, one_thread):
    """Measured on the teacher's distribution, not on accuracy (one word decides the label, so labels alone get
    every example right): the distilled student ends far closer to the teacher than a labels-only control
    built and trained the same way, and the attention and hidden-state terms fall while it trains."""
    data, teacher, tok = tiny_setup
    # a teacher that knows the task: fine-tune it briefly on labels
    acc = make_accelerator("cpu", "no", 0)
    train = EncodedSplit(tok, data.splits["train"], data.label_ids("train"), 16)
    val = EncodedSplit(tok, data.splits["validation"], data.label_ids("validation"), 16)
    fit_cfg = TrainingConfig(max_steps=40, batch_size=16, learning_rate=5e-3, evals_per_epoch=1)
    fitted = fit(
        acc,
        teacher,
        make_loader(train, 16, True, 0),
        make_loader(val, 64, False, 0),
        fit_cfg,
        ce_loss,
        "teacher",
    )
    assert fitted.best_metrics["accuracy"] >= 0.9
    texts, _ = data.texts("validation")
    teacher_logits = torch_logits(teacher, tok, texts, 16)

    def trained(weights: LossWeights):
        torch.manual_seed(0)
        student, _ = build_student(teacher, StudentConfig(num_layers=2), data.labels)
        cfg = DistillConfig(
            weights=weights,
            training=TrainingConfig(max_steps=30, batch_size=16, learning_rate=5e-3, evals_per_epoch=1),
        )
        record = distill(cfg, DistillPair(student, teacher, tok), stage_context(data, accelerator=acc))
        return record, kl_to_teacher(teacher_logits, torch_logits(student, tok, texts, 16))

    record, distilled_gap = trained(LossWeights())  # labels + soft targets + attention + hidden states
    control, control_gap = trained(LossWeights(ce=1, kd=0, attention=0, hidden=0))
    assert record["steps"] == 30 and record["layer_mapping"] == [0, 3]
    assert record["validation"]["accuracy"] == control["validation"]["accuracy"] == 1.0  # says nothing
    # measured 0.031 against 0.81: the soft targets keep the student's distribution on the teacher's
    assert 10 * distilled_gap < control_gap, (distilled_gap, control_gap)
    first, last = record["history"][0], record["history"][-1]
    assert first["step"] < last["step"] == 30
    assert last["train_att"] < 0.8 * first["train_att"] and last["train_hid"] < 0.8 * first["train_hid"]


def test_labels_only_never_calls_the_teacher(tiny_setup):
    data, teacher, tok = tiny_setup
    student, _ = build_student(teacher, StudentConfig(num_layers=1), data.labels)

    def boom(*a, **k):
        raise AssertionError("teacher forward called in labels-only mode")

    teacher.forward = boom
    cfg = DistillConfig(
        weights=LossWeights(ce=1, kd=0, attention=0, hidden=0),
        training=TrainingConfig(max_steps=3, batch_size=8, evals_per_epoch=1),
    )
    acc = make_accelerator("cpu", "no", 0)
    record = distill(cfg, DistillPair(student, teacher, tok), stage_context(data, accelerator=acc))
    assert record["steps"] == 3


def test_tiny_recipe_fixture_is_valid(tiny_teacher, tiny_csv, tmp_path):
    from edgecompress.recipe import recipe_from_dict

    recipe_from_dict(tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out"))


def test_attention_transfer_sees_maps_without_dropout(tiny_setup):
    """A student layer copied from the teacher layer it is matched to starts with zero attention loss,
    even in training mode (attention dropout would otherwise zero out entries of the returned maps)."""
    from edgecompress.distill.stage import disable_attention_dropout

    data, teacher, tok = tiny_setup
    teacher.eval()
    enc = tok(["the movie was great fun", "dull"], padding=True, return_tensors="pt")

    def layer0_loss(student):
        student.train()  # embedding/hidden dropout stay on: only the attention maps must be clean
        with torch.no_grad():
            s = student(**enc, output_attentions=True)
            t = teacher(**enc, output_attentions=True)
        return float(attention_transfer_loss(s.attentions[0], t.attentions[0], enc["attention_mask"], "kl"))

    torch.manual_seed(0)
    noisy, _ = build_student(teacher, StudentConfig(num_layers=1, init_layers=[0]), data.labels)
    assert layer0_loss(noisy) > 0.05  # zeros from attention dropout blow up the KL
    clean, _ = build_student(teacher, StudentConfig(num_layers=1, init_layers=[0]), data.labels)
    assert disable_attention_dropout(clean) == 1
    assert layer0_loss(clean) < 1e-3


def test_paired_split_marks_examples_tokenised_alike(tiny_teacher):
    """After vocabulary trimming, the teacher reads its own tokens; only identical sequences are aligned."""
    from transformers import AutoTokenizer

    from edgecompress.data.examples import Example
    from edgecompress.prune.vocab import trim_vocabulary
    from edgecompress.training.batching import PairedSplit, token_id_map

    teacher_tok = AutoTokenizer.from_pretrained(tiny_teacher)
    vocab = teacher_tok.get_vocab()
    keep = sorted(i for t, i in vocab.items() if t != "boring")  # "boring" must now be spelled out
    student, _ = load_classifier(resolve(str(tiny_teacher), "t"), ["negative", "positive"])
    student_tok = trim_vocabulary(student, teacher_tok, keep)
    examples = [Example("the movie was great", "positive"), Example("a boring plot", "negative")]
    s = EncodedSplit(student_tok, examples, [1, 0], 16)
    t = EncodedSplit(teacher_tok, examples, [1, 0], 16)
    paired = PairedSplit(s, t, token_id_map(student_tok, teacher_tok))
    assert paired.aligned == [True, False]
    batch = paired.collate([paired[0], paired[1]])
    assert batch["teacher_inputs"]["input_ids"].shape[1] < batch["input_ids"].shape[1]
    assert batch["aligned"].tolist() == [True, False]


def test_position_losses_use_only_aligned_examples():
    from types import SimpleNamespace

    cfg = DistillConfig(weights=LossWeights(ce=0, kd=0, attention=1, hidden=1))
    loss = DistillationLoss(cfg, [0], 4, 4)
    t_att, s_att = _att(b=2, h=2, n=5, seed=1), _att(b=2, h=2, n=6, seed=1)[..., :6, :6].clone()
    s_att[0, :, :5, :5] = t_att[0]  # example 0: same maps on the common width
    s_att[0, :, :5, 5] = 0
    hid_t, hid_s = torch.randn(2, 5, 4), torch.randn(2, 6, 4)
    hid_s[0, :5] = hid_t[0]
    teacher = SimpleNamespace(attentions=[t_att], hidden_states=[hid_t, hid_t])
    student = SimpleNamespace(attentions=[s_att], hidden_states=[hid_s, hid_s])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    _, parts = loss(student, teacher, torch.tensor([0, 1]), mask, aligned=torch.tensor([True, False]))
    assert parts["att"] < 1e-6 and parts["hid"] < 1e-9  # example 1 (unaligned) does not count
    _, parts = loss(student, teacher, torch.tensor([0, 1]), mask, aligned=torch.tensor([True, True]))
    assert parts["att"] > 1e-3 and parts["hid"] > 1e-3
