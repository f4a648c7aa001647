"""Scores of PyTorch models for the studies that compare training choices before any export (the run's own
figures come from ONNX Runtime outputs, in the benchmark stage)."""

from __future__ import annotations

from pathlib import Path

from edgecompress.data.examples import PreparedData
from edgecompress.export.onnx import torch_logits
from edgecompress.training.metrics import split_metrics


def pytorch_split_metrics(
    model, tokenizer, data: PreparedData, split: str, max_length: int, batch_size: int = 64
) -> dict:
    """Accuracy and macro-F1 of a PyTorch model on a split."""
    texts, pairs = data.texts(split)
    return split_metrics(torch_logits(model, tokenizer, texts, max_length, batch_size, pairs), data, split)


def saved_model_metrics(model_dir: Path, data: PreparedData, split: str, max_length: int) -> dict:
    """``pytorch_split_metrics`` of a model folder a training stage wrote."""
    from transformers import AutoTokenizer

    from edgecompress.modeling.loading import load_saved_classifier

    model = load_saved_classifier(model_dir)
    return pytorch_split_metrics(model, AutoTokenizer.from_pretrained(model_dir), data, split, max_length)
