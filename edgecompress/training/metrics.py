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
