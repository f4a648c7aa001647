"""Students that are not transformers: BiLSTM and TextCNN over the teacher's word-pieces, distilled on its
logits with an augmented transfer set, exported, quantized, converted to .ort and served by predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_recipe
from typer.testing import CliRunner

from edgecompress.cli import app
from edgecompress.data.examples import Example
from edgecompress.distill.augment import augmented_examples
from edgecompress.distill.config import AugmentationConfig, StudentConfig
from edgecompress.modeling.classic import ClassicClassifier, build_classic
from edgecompress.pipeline import run_recipe
from edgecompress.recipe import recipe_from_dict

runner = CliRunner()


def _classic_recipe(teacher, data, out, architecture: str) -> dict:
    recipe = tiny_recipe(
        teacher,
        data,
        out,
        distill={
            "training": {"max_steps": 60, "batch_size": 16, "learning_rate": 1e-2, "evals_per_epoch": 1},
            "weights": {"ce": 1, "kd": 1, "attention": 0, "hidden": 0.5},
            "kd_loss": "mse",
            "hidden_loss": "cosine",
            "augmentation": {"copies": 2},
        },
        prune={
            "vocab": {"enabled": True, "min_frequency": 1},
            "recovery": {"max_steps": 10, "batch_size": 16},
        },
        quantization={"variants": [{"method": "int8_dynamic", "name": "int8-dynamic", "per_channel": True}]},
        benchmark={"batch_sizes": [1, 4], "threads": [1], "runs": 3, "warmup": 1},
        mobile={"variants": ["pruned-int8-dynamic"]},
    )
    encoder = (
        {"lstm": {"hidden_size": 16}}
        if architecture == "bilstm"
        else {"cnn": {"kernel_sizes": [2, 3], "filters": 16}}
    )
    recipe["student"] = {"architecture": architecture, "embedding_dim": 16, "dropout": 0.0, **encoder}
    return recipe


@pytest.fixture(scope="module", params=["textcnn", "bilstm"])
def classic_run(request, tiny_teacher, tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "run"
    summary = run_recipe(
        recipe_from_dict(_classic_recipe(tiny_teacher, tiny_csv, out, request.param)), log=lambda _m: None
    )
    return request.param, out, summary


def test_classic_student_runs_end_to_end(classic_run):
    arch, out, summary = classic_run
    rows = {r["variant"]: r for r in summary.rows}
    assert set(rows) == {
        "teacher-fp32",
        "student-fp32",
        "student-int8-dynamic",
        "pruned-fp32",
        "pruned-int8-dynamic",
    }
    assert rows["student-fp32"]["accuracy"] > 0.8  # the sentiment word decides the label: learnt
    assert rows["student-fp32"]["size_mb"] * 5 < rows["teacher-fp32"]["size_mb"]
    student = json.loads((out / "student" / "stage.json").read_text())["record"]
    assert student["student"]["architecture"] == arch
    n_train = json.loads((out / "data" / "stage.json").read_text())["record"]["splits"]["train"]["examples"]
    assert student["transfer_set"] == {
        "examples": 3 * n_train,
        "augmented": 2 * n_train,
        "teacher_outputs": "computed once",
    }
    assert (out / "student" / "teacher_outputs.npz").is_file() and (
        out / "student" / "transfer_set.jsonl"
    ).is_file()
    parity = json.loads((out / "models" / "student-fp32" / "manifest.json").read_text())["parity_vs_pytorch"]
    assert parity["max_abs_logit_diff"] < 1e-4
    mobile = json.loads((out / "mobile" / "pruned-int8-dynamic" / "mobile.json").read_text())
    assert mobile["loads_and_runs"] and mobile["vs_onnx"]["argmax_agreement"] == 1.0
    assert "Parameters" in (out / "report.md").read_text()  # the pruning section: its vocabulary only
    if arch == "textcnn":  # convolutions exported as MatMul: int8 kernels, no ConvInteger
        import onnx

        graph = onnx.load(str(out / "models" / "pruned-int8-dynamic" / "model.onnx")).graph
        ops = {n.op_type for n in graph.node}
        assert "Conv" not in ops and "ConvInteger" not in ops
        assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}, sorted(ops)


@pytest.mark.parametrize("kernel", [1, 2, 5])
def test_convolution_as_a_matrix_product_is_the_same_function(kernel):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(8, 6, kernel, padding=kernel - 1)
    x = torch.randn(3, 8, 11)
    expected = conv(x)
    got = ClassicClassifier._conv_as_matmul(conv, x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_predict_serves_a_classic_artifact(classic_run):
    _, out, _ = classic_run
    result = runner.invoke(
        app, ["predict", str(out / "models" / "pruned-int8-dynamic"), "a great fun film", "dull"]
    )
    assert result.exit_code == 0, result.output
    labels = [line.split("\t")[0] for line in result.output.strip().splitlines()]
    assert labels == ["positive", "negative"]


@pytest.mark.parametrize("architecture", ["textcnn", "bilstm"])
def test_padding_never_changes_the_logits(tiny_teacher, architecture):
    """A text alone and the same text in a padded batch: the same logits (so batch 1 on a phone equals the
    batched evaluation)."""
    from transformers import AutoTokenizer

    from edgecompress.modeling.loading import load_classifier, resolve

    teacher, _ = load_classifier(resolve(str(tiny_teacher), "t"), ["negative", "positive"])
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    cfg = StudentConfig(architecture=architecture, embedding_dim=16)
    model, built = build_classic(cfg, teacher, ["negative", "positive"], tok.pad_token_id)
    model.eval()
    assert built["params"] == sum(p.numel() for p in model.parameters())
    alone = tok(["good movie"], return_tensors="pt")
    batch = tok(["good movie", "the film was very dull and the plot flat"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = model(alone["input_ids"], alone["attention_mask"]).logits
        b = model(batch["input_ids"], batch["attention_mask"]).logits[:1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_classic_save_load_and_teacher_embeddings(tiny_teacher, tmp_path):
    from edgecompress.modeling.loading import load_classifier, load_saved_classifier, resolve

    teacher, _ = load_classifier(resolve(str(tiny_teacher), "t"), ["negative", "positive"])
    model, _ = build_classic(StudentConfig(architecture="textcnn"), teacher, ["negative", "positive"], 0)
    torch.testing.assert_close(
        model.embeddings.weight, teacher.get_input_embeddings().weight
    )  # same width: copied
    model.save_pretrained(tmp_path)
    back = load_saved_classifier(tmp_path)
    assert isinstance(back, ClassicClassifier) and back.config.id2label == {0: "negative", 1: "positive"}
    ids = torch.tensor([[4, 9, 12, 5]])
    torch.testing.assert_close(back(ids).logits, model.eval()(ids).logits)


def test_augmentation_is_deterministic_for_a_seed():
    examples = [Example(f"the film number {i} was a great and moving story", "positive") for i in range(20)]
    cfg = AugmentationConfig(copies=3, mask_prob=0.2, ngram_prob=0.5, ngram_max=3)
    a = augmented_examples(examples, cfg, "[MASK]", seed=1)
    assert [e.text for e in a] == [e.text for e in augmented_examples(examples, cfg, "[MASK]", seed=1)]
    assert [e.text for e in a] != [e.text for e in augmented_examples(examples, cfg, "[MASK]", seed=2)]
    assert len(a) == 60 and all(e.label == "positive" for e in a)
    assert any("[MASK]" in e.text for e in a)
    words = examples[0].text.split()
    shorter = [e.text.split() for e in a[:3] if len(e.text.split()) < len(words)]
    assert all(len(s) <= 3 for s in shorter)  # an n-gram of at most ngram_max words


NO_ATTENTION = {"weights": {"attention": 0.0}}


@pytest.mark.parametrize(
    "student, distill, prune, message",
    [
        (
            {"architecture": "textcnn"},
            {"weights": {"attention": 1.0}},
            None,
            "distill.weights.attention: attention transfer needs a transformer student (student.architecture is "
            "textcnn); set it to 0",
        ),
        (
            {"architecture": "textcnn"},
            NO_ATTENTION,
            {"heads": {"mode": "structured", "fraction": 0.5}},
            "prune: a textcnn student has no heads or FFN units; only prune.vocab applies to it",
        ),
        (
            {"architecture": "textcnn", "num_layers": 2},
            NO_ATTENTION,
            None,
            "student: num_layers: transformer fields",
        ),
        ({"lstm": {"hidden_size": 32}}, {}, None, "student: lstm: bilstm / textcnn fields"),
    ],
)
def test_transformer_only_settings_are_refused(
    tiny_teacher, tiny_csv, tmp_path, student, distill, prune, message
):
    recipe = tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out")
    recipe["student"], recipe["distill"] = student, distill
    if prune is not None:
        recipe["prune"] = prune
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.output.strip()


def test_recipes_for_the_classic_students_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "recipes"
    for name in ("bert_to_textcnn", "bert_to_bilstm"):
        result = runner.invoke(app, ["validate", str(root / f"{name}.yaml")])
        assert result.exit_code == 0, result.output


def test_logits_mse_and_cosine_terms():
    from edgecompress.distill.losses import hard_label_loss, hidden_state_loss, logit_loss

    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 4.0]])
    assert float(logit_loss(s, t, "mse", 2.0)) == pytest.approx(2.0)
    v = torch.tensor([[1.0, 0.0]])
    assert float(hidden_state_loss(v, torch.tensor([[0.0, 3.0]]), torch.ones(1), "cosine")) == pytest.approx(
        1.0
    )
    assert float(hidden_state_loss(v, 2 * v, torch.ones(1), "cosine")) == pytest.approx(0.0, abs=1e-6)
    logits = torch.tensor([[0.0, 5.0], [3.0, 0.0]])
    assert float(hard_label_loss(logits, torch.tensor([-1, -1]))) == 0.0  # augmented copies only
    assert float(hard_label_loss(logits, torch.tensor([1, -1]))) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[:1], torch.tensor([1])))
    )
    assert np.isfinite(float(hard_label_loss(logits, torch.tensor([1, 0]))))
