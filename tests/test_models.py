"""Loading teachers safely, aligning existing heads to our labels, and building students."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_bert

from edgecompress.distill.config import StudentConfig
from edgecompress.errors import ModelError, RecipeError
from edgecompress.modeling.loading import head_label_order, load_classifier, resolve
from edgecompress.modeling.student import build_student, evenly_spread, layer_list_name

LABELS = ["negative", "positive"]


def test_evenly_spread_includes_first_and_last():
    assert evenly_spread(6, 3) == [0, 2, 5]
    assert evenly_spread(12, 4) == [0, 4, 7, 11]
    assert evenly_spread(6, 6) == [0, 1, 2, 3, 4, 5]
    assert evenly_spread(6, 1) == [5]


def test_resolve_errors(tmp_path):
    with pytest.raises(ModelError, match="teacher.model: './missing' is not a folder"):
        resolve("./missing", "teacher.model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        resolve(str(tmp_path / "empty"), "teacher.model")
    make_tiny_bert(tmp_path / "m")
    for f in (tmp_path / "m").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelError, match="safetensors only"):
        resolve(str(tmp_path / "m"), "teacher.model")
    with pytest.raises(ModelError, match="unknown embedded model"):
        resolve("embedded:gpt-5", "teacher.model")


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    src = resolve("no-such-org/no-such-model", "teacher.model")
    assert not src.is_local
    with pytest.raises(
        ModelError, match="teacher.model: cannot load 'no-such-org/no-such-model': not a local folder"
    ):
        load_classifier(src, LABELS)


def test_embedded_minilm_resolves():
    src = resolve("embedded:all-MiniLM-L6-v2", "teacher.model")
    assert src.is_local and src.location.endswith("model")


def test_headless_teacher_gets_a_new_head(tiny_teacher):
    model, kept = load_classifier(resolve(str(tiny_teacher), "teacher.model"), LABELS)
    assert kept is False
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config._attn_implementation == "eager"


def test_existing_head_is_kept_and_reordered_to_sorted_labels(tmp_path):
    original = make_tiny_bert(tmp_path / "t", labels=["positive", "negative"], with_head=True)
    model, kept = load_classifier(resolve(str(tmp_path / "t"), "teacher.model"), LABELS)
    assert kept is True
    ids = torch.tensor([[2, 5, 9, 3]])
    with torch.no_grad():
        before = original.eval()(input_ids=ids).logits
        after = model.eval()(input_ids=ids).logits
    # our label 0 is "negative", which was the checkpoint's row 1
    assert torch.allclose(after[:, 0], before[:, 1]) and torch.allclose(after[:, 1], before[:, 0])


def test_head_label_order_rules():
    from transformers import BertConfig

    cfg = BertConfig(num_labels=2, architectures=["BertForSequenceClassification"])
    cfg.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    assert head_label_order(cfg, LABELS) is None  # placeholder names: not a head for our labels
    assert head_label_order(cfg, LABELS, ["negative", "positive"]) == [0, 1]  # unless the recipe names them
    cfg.id2label = {0: "POSITIVE", 1: "NEGATIVE"}
    assert head_label_order(cfg, LABELS) == [1, 0]
    cfg.id2label = {0: "spam", 1: "ham"}
    assert head_label_order(cfg, LABELS) is None
    cfg.architectures = ["BertModel"]
    assert head_label_order(cfg, LABELS) is None


def test_student_copies_the_chosen_teacher_layers(tiny_teacher):
    teacher, _ = load_classifier(resolve(str(tiny_teacher), "t"), LABELS)
    student, info = build_student(teacher, StudentConfig(num_layers=2, init_layers=[1, 3]), LABELS)
    assert info["init_layers"] == [1, 3] and student.config.num_hidden_layers == 2
    name = layer_list_name(student)
    s_layers = student.get_submodule(name)
    t_layers = teacher.get_submodule(name)
    for i, t in enumerate([1, 3]):
        for (ks, vs), (kt, vt) in zip(
            s_layers[i].state_dict().items(), t_layers[t].state_dict().items(), strict=True
        ):
            assert ks == kt and torch.equal(vs, vt)
    assert torch.equal(
        student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight
    )
    default, info = build_student(teacher, StudentConfig(num_layers=2), LABELS)
    assert info["init_layers"] == [0, 3]


def test_student_of_other_width_is_random(tiny_teacher):
    teacher, _ = load_classifier(resolve(str(tiny_teacher), "t"), LABELS)
    student, info = build_student(
        teacher,
        StudentConfig(num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32),
        LABELS,
    )
    assert student.config.hidden_size == 16 and "random" in info["init"]


def test_student_errors(tiny_teacher):
    teacher, _ = load_classifier(resolve(str(tiny_teacher), "t"), LABELS)
    with pytest.raises(RecipeError, match="student.num_layers: 9 layers asked, the teacher has only 4"):
        build_student(teacher, StudentConfig(num_layers=9), LABELS)
    with pytest.raises(RecipeError, match="student.init_layers: teacher layer 7 does not exist"):
        build_student(teacher, StudentConfig(num_layers=2, init_layers=[0, 7]), LABELS)
    with pytest.raises(RecipeError, match="not divisible"):
        build_student(teacher, StudentConfig(num_layers=2, num_attention_heads=5), LABELS)


def test_given_model_as_student(tiny_teacher, tmp_path):
    make_tiny_bert(tmp_path / "s", layers=1)
    teacher, _ = load_classifier(resolve(str(tiny_teacher), "t"), LABELS)
    student, info = build_student(teacher, StudentConfig(model=str(tmp_path / "s")), LABELS)
    assert student.config.num_hidden_layers == 1 and info["built_from"] == str(tmp_path / "s")
