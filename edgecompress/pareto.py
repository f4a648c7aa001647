"""Figures against a baseline and the Pareto front: the arithmetic the report, the studies and the benchmark
scripts share (one place, so "x faster" means the same in every table)."""

from __future__ import annotations


def against(base: dict, row: dict, faster: dict[str, str] | None = None) -> dict[str, float]:
    """``row``'s size ratio, latency ratios and accuracy change against ``base``: ``x_smaller`` (base MB / row
    MB), one ``x faster`` entry per ``faster`` item (output name -> latency column; default ``x_faster`` from
    ``latency_ms_p50``: base time / row time) and ``accuracy_delta_pts`` (points, row minus base)."""
    out = {"x_smaller": base["size_mb"] / row["size_mb"]}
    for name, column in (faster or {"x_faster": "latency_ms_p50"}).items():
        out[name] = base[column] / row[column]
    out["accuracy_delta_pts"] = 100 * (row["accuracy"] - base["accuracy"])
    return out


def pareto_front(points: list[dict], x: str = "latency_ms_p50", y: str = "accuracy") -> list[dict]:
    """The points that no other point beats: every point at least as fast (``x`` no higher) is less accurate
    (``y`` lower); by increasing ``x``."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p[x], -p[y])):
        if p[y] > best:
            front.append(p)
            best = p[y]
    return front
