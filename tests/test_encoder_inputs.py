"""Families whose model or graph takes no token_type_ids (RoBERTa, DistilBERT, MPNet), with tokenizers that return
them anyway (PreTrainedTokenizerFast, BERT's class reused for DistilBERT): teacher fine-tuning, ONNX export with
parity, int8 dynamic and static quantization and ONNX Runtime logits all feed only what the model takes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import export_model, stage_context, synthetic_rows
from tiny_tokenizers import corpus, distilbert_tokenizer, mpnet_tokenizer, roberta_tokenizer, save_family

from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare
from edgecompress.export.config import ExportConfig
from edgecompress.export.onnx import ort_logits, ort_session
from edgecompress.inputs import graph_inputs, model_inputs
from edgecompress.quantize import QuantContext, quantize
from edgecompress.quantize.config import Int8DynamicConfig, Int8StaticConfig

FAMILIES = {
    "roberta": lambda texts: roberta_tokenizer(texts, fast_class=False),
    "distilbert": distilbert_tokenizer,
    "mpnet": lambda texts: mpnet_tokenizer(texts, fast_class=False),
}


@pytest.fixture(scope="module")
def data(tiny_csv):
    return prepare(DataConfig(source="csv", path=str(tiny_csv), max_length=16), 0)


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_dir(request, tmp_path_factory):
    """A tiny classifier of the family saved with a tokenizer that returns token_type_ids."""
    family = request.param
    texts = corpus() + [row["text"] for row in synthetic_rows(60)]
    folder = tmp_path_factory.mktemp(family)
    model, tokenizer = save_family(folder, family, texts, FAMILIES[family](texts))
    assert "token_type_ids" in tokenizer("a text")  # what the test is about
    assert "token_type_ids" not in model_inputs(model)
    return family, folder


def test_the_teacher_fine_tunes_without_token_types(family_dir, data, tmp_path, one_thread):
    from edgecompress.teacher import stage as teacher_stage
    from edgecompress.teacher.config import TeacherConfig
    from edgecompress.training.accel import make_accelerator

    _, folder = family_dir
    cfg = TeacherConfig(
        model=str(folder), finetune="always", training={"max_steps": 2, "batch_size": 8, "evals_per_epoch": 1}
    )
    ctx = stage_context(data, accelerator=make_accelerator("cpu", "no", 0))
    out = tmp_path / "teacher"
    out.mkdir()
    record = teacher_stage.run(cfg, None, ctx, out)
    assert record["finetuned"] and (out / "model.safetensors").is_file()


def test_export_parity_and_int8_without_token_types(family_dir, data, tmp_path, one_thread):
    from transformers import AutoTokenizer

    family, folder = family_dir
    fp32 = tmp_path / "fp32"
    info = export_model(
        ExportConfig(parity_samples=16, parity_atol=1e-4), folder, data, fp32, f"{family}-fp32"
    )
    assert info["parity_vs_pytorch"]["max_abs_logit_diff"] < 1e-4
    assert "token_type_ids" not in graph_inputs(fp32 / "model.onnx")
    texts, _ = data.texts("validation", 16)
    tokenizer = AutoTokenizer.from_pretrained(fp32)
    reference = ort_logits(ort_session(fp32 / "model.onnx"), tokenizer, texts, 16)
    for cfg in (Int8DynamicConfig(), Int8StaticConfig(calibration_samples=16)):
        out = tmp_path / cfg.method
        q = quantize(cfg, fp32, out, QuantContext(data, 16, 0, tmp_path / f"scratch-{cfg.method}"))
        assert q["precision"] == "int8"
        got = ort_logits(ort_session(out / "model.onnx"), AutoTokenizer.from_pretrained(out), texts, 16)
        assert got.shape == reference.shape and np.all(np.isfinite(got))
        assert np.max(np.abs(got - reference)) < 0.1, cfg.method


@pytest.mark.parametrize(
    "family, takes_types",
    [
        ("bert", True),
        ("roberta", False),
        ("distilbert", False),
        ("mpnet", False),
        ("modernbert", False),
        ("deberta-v2", False),
    ],
)
def test_model_inputs_per_family(family, takes_types):
    """BERT reads token types; RoBERTa has one type and DeBERTa-v3 none; DistilBERT and MPNet refuse them;
    ModernBERT swallows them in **kwargs (a named parameter is what counts)."""
    from tiny_tokenizers import TOKENIZERS, tiny_classifier

    model = tiny_classifier(family, TOKENIZERS[family](corpus()))
    expected = ("input_ids", "attention_mask") + (("token_type_ids",) if takes_types else ())
    assert model_inputs(model) == expected


def test_calibration_samples_hold_only_the_graphs_inputs(data, tmp_path):
    from tiny_tokenizers import bert_tokenizer

    from edgecompress.quantize.context import calibration_samples

    ctx = QuantContext(data, 16, 0, tmp_path)
    tokenizer = bert_tokenizer(corpus())
    assert set(calibration_samples(ctx, tokenizer, 4)[0]) == {"input_ids", "attention_mask", "token_type_ids"}
    samples = calibration_samples(ctx, tokenizer, 4, ("input_ids", "attention_mask"))
    assert len(samples) == 4 and all(set(s) == {"input_ids", "attention_mask"} for s in samples)
