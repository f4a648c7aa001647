"""What a trial is scored on: its artifact's validation predictions (ONNX Runtime), the paired bootstrap
interval of its accuracy drop against the teacher's, its latency timed interleaved with the teacher's, and its
size. Nothing here reads the test split except ``split_figures`` at the end of a search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecompress.data.examples import PreparedData
from edgecompress.export.artifact import onnx_size_mb


def predictions(
    folder: Path, data: PreparedData, split: str, max_length: int, batch_size: int = 64
) -> np.ndarray:
    """Predicted label ids of a variant folder on ``split``, from ONNX Runtime outputs."""
    from transformers import AutoTokenizer

    from edgecompress.export.onnx import ort_logits, ort_session

    texts, pairs = data.texts(split)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    logits = ort_logits(ort_session(folder / "model.onnx"), tokenizer, texts, max_length, batch_size, pairs)
    return np.asarray(logits).argmax(-1)


def paired_drop(
    teacher: np.ndarray, candidate: np.ndarray, labels: np.ndarray, resamples: int, seed: int
) -> dict:
    """Accuracy points the candidate loses against the teacher on the same examples, with a 95% paired
    bootstrap interval (both scored on each resample of the examples)."""
    t_right = (teacher == labels).astype(np.float64)
    c_right = (candidate == labels).astype(np.float64)
    diff = t_right - c_right
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    boot = 100.0 * diff[idx].mean(axis=1)
    return {
        "drop_pts": float(100.0 * diff.mean()),
        "drop_low": float(np.percentile(boot, 2.5)),
        "drop_high": float(np.percentile(boot, 97.5)),
        "accuracy": float(c_right.mean()),
        "teacher_accuracy": float(t_right.mean()),
    }


def interleaved_latency(
    candidate: Path, teacher: Path, data: PreparedData, length: int, runs: int, warmup: int
) -> dict:
    """Batch 1, 1 thread, ``length`` tokens: the candidate and the teacher timed in alternating rounds, so the
    ratio holds on a busy machine even when the milliseconds drift."""
    from transformers import AutoTokenizer

    from edgecompress.benchmark.latency import fixed_length_inputs, time_interleaved
    from edgecompress.export.onnx import ort_feed, ort_session

    texts, pairs = data.texts("validation", limit=16)
    sessions, feeds = {}, {}
    for name, folder in (("candidate", candidate), ("teacher", teacher)):
        sessions[name] = ort_session(folder / "model.onnx", threads=1)
        tok = AutoTokenizer.from_pretrained(folder)
        feeds[name] = ort_feed(sessions[name], fixed_length_inputs(tok, texts, 1, length, pairs))
    times = time_interleaved(sessions, feeds, runs, warmup)
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    return {
        "latency_ms_p50": ms["candidate"],
        "teacher_latency_ms_p50": ms["teacher"],
        "latency_ratio": ms["candidate"] / ms["teacher"],
    }


def size_mb(folder: Path) -> float:
    return onnx_size_mb(folder)


def split_figures(folder: Path, data: PreparedData, split: str, max_length: int) -> dict:
    """Accuracy and macro-F1 on ``split`` (the search's last step: test figures of the points it chose)."""
    from edgecompress.training.metrics import classification_metrics

    pred = predictions(folder, data, split, max_length)
    return classification_metrics(pred, data.label_ids(split), len(data.labels))
