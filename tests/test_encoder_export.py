"""Pruned MPNet, DeBERTa-v3 and ModernBERT classifiers reloaded through edgecompress's loader export to ONNX
with the same logits: the head records and the sliced shared bias leave nothing special in the graph."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_encoder_adapters import config_for_tokenizer

from edgecompress.export.onnx import export, ort_logits, ort_session, torch_logits
from edgecompress.modeling import layers
from edgecompress.modeling.loading import load_saved_classifier
from edgecompress.prune import surgery

TEXTS = ["a fine film", "dull and far too long, with nothing to say", "good"]


@pytest.mark.parametrize("model_type", ["mpnet", "deberta-v2", "modernbert"])
def test_pruned_family_exports_with_the_same_logits(model_type, tmp_path, tiny_teacher, one_thread):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    cfg = config_for_tokenizer(model_type, tokenizer, max_position_embeddings=42, num_labels=2)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(copy.deepcopy(cfg), attn_implementation="eager")
    heads = {i: [1] for i in range(4)} if model_type == "mpnet" else {0: [1, 2], 2: [0]}
    surgery.remove_heads(model, heads)
    surgery.remove_units(model, {1: list(range(10))})
    model.save_pretrained(tmp_path / "pruned", safe_serialization=True)
    back = load_saved_classifier(tmp_path / "pruned")
    assert layers.head_counts(back) == layers.head_counts(model)
    path = export(back, tokenizer, tmp_path / "onnx", 17, 32)
    expected = torch_logits(back, tokenizer, TEXTS, 32)
    got = ort_logits(ort_session(path, threads=1), tokenizer, TEXTS, 32)
    assert np.abs(got - expected).max() < 1e-4
