"""Classification metrics without extra dependencies."""

from __future__ import annotations

import numpy as np


def classification_metrics(predictions, labels, num_labels: int | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (F1 averaged over labels, each label counting equally)."""
    pred = np.asarray(predictions)
    gold = np.asarray(labels)
    if pred.shape != gold.shape or gold.size == 0:
        raise ValueError("predictions and labels must be non-empty and of equal length")
    n = num_labels or int(max(pred.max(), gold.max()) + 1)
    f1s = []
    for c in range(n):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        denom = 2 * tp + fp + fn
        f1s.append(0.0 if denom == 0 else 2 * tp / denom)
    return {"accuracy": float(np.mean(pred == gold)), "f1_macro": float(np.mean(f1s))}


def split_metrics(logits: np.ndarray, data, split: str) -> dict[str, float]:
    """Accuracy and macro-F1 of ``logits`` (one row per example of ``data.splits[split]``, in order)."""
    return classification_metrics(np.asarray(logits).argmax(-1), data.label_ids(split), len(data.labels))
