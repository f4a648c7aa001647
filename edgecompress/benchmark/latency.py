"""Latency with ONNX Runtime: variants timed interleaved (round-robin), so drift hits them all alike."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from edgecompress.export.onnx import ort_feed, ort_session


def fixed_length_inputs(
    tokenizer, texts: list[str], batch_size: int, sequence_length: int, pairs=None
) -> dict:
    """``batch_size`` real texts padded/truncated to exactly ``sequence_length`` tokens."""
    picked = [texts[i % len(texts)] for i in range(batch_size)]
    picked_pairs = None if pairs is None else [pairs[i % len(pairs)] for i in range(batch_size)]
    enc = tokenizer(
        picked,
        picked_pairs,
        truncation=True,
        max_length=sequence_length,
        padding="max_length",
        return_tensors="np",
    )
    return dict(enc)


def resolve_threads(threads: int) -> int:
    return threads or os.cpu_count() or 1


def summarize(times_s: list[float], batch_size: int) -> dict:
    ms = np.asarray(times_s) * 1e3
    return {
        "runs": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": float(batch_size / (np.median(ms) / 1e3)),
    }


def time_interleaved(sessions: dict, feeds: dict, runs: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per run for each variant; each round runs every variant once, in a rotating order."""
    names = list(sessions)
    for name in names:
        for _ in range(warmup):
            sessions[name].run(None, feeds[name])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            sessions[name].run(None, feeds[name])
            times[name].append(time.perf_counter() - start)
    return times


@dataclass(frozen=True)
class TimingPlan:
    """What is timed: every (batch size, threads) pair at one sequence length, ``runs`` times after
    ``warmup`` untimed runs."""

    sequence_length: int
    batch_sizes: list[int]
    threads: list[int]  # 0 = all cores
    runs: int
    warmup: int


def measure_latency(
    variants: dict[str, tuple],  # name -> (onnx_path, tokenizer)
    texts: list[str],
    pairs,
    plan: TimingPlan,
    progress=None,
) -> list[dict]:
    """One row per (variant, batch size, threads); inputs are real ``texts`` padded to the plan's length."""
    rows = []
    sequence_length = plan.sequence_length
    for t in plan.threads:
        n_threads = resolve_threads(t)
        sessions = {name: ort_session(path, threads=n_threads) for name, (path, _) in variants.items()}
        for b in plan.batch_sizes:
            feeds = {
                name: ort_feed(sessions[name], fixed_length_inputs(tok, texts, b, sequence_length, pairs))
                for name, (_, tok) in variants.items()
            }
            times = time_interleaved(sessions, feeds, plan.runs, plan.warmup)
            for name in variants:
                rows.append(
                    {
                        "variant": name,
                        "batch_size": b,
                        "threads": n_threads,
                        "sequence_length": sequence_length,
                        **summarize(times[name], b),
                    }
                )
            if progress:
                progress(f"timed batch {b}, {n_threads} thread(s)")
        del sessions
    return rows
