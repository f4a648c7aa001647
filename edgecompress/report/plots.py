"""PNG plots: accuracy vs latency, and size per variant."""

from __future__ import annotations

from pathlib import Path

from edgecompress.pareto import pareto_front


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label_positions(xy: list[tuple[float, float]], min_gap: float) -> list[float]:
    """Vertical label positions (display units) that keep labels at least ``min_gap`` apart when their
    points sit close together; each label stays as near its point as it can."""
    order = sorted(range(len(xy)), key=lambda i: (xy[i][1], xy[i][0]))
    placed: list[tuple[float, float]] = []  # (x, y) of labels already placed
    out = [0.0] * len(xy)
    for i in order:
        x, y = xy[i]
        for px, py in sorted(placed, key=lambda p: p[1]):
            if abs(px - x) < 140 and abs(py - y) < min_gap:
                y = py + min_gap
        placed.append((x, y))
        out[i] = y
    return out


def accuracy_vs_latency(rows: list[dict], path: Path, title: str = "Accuracy vs latency") -> None:
    """Each variant at (p50 latency, accuracy), marker area ~ MB; Pareto-optimal points ringed and joined.

    Variants that land on the same point share one label; nearby labels are moved apart, not stacked."""
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    same: dict[tuple[float, float], list[dict]] = {}
    for r in rows:
        same.setdefault((round(r["latency_ms_p50"], 3), round(r["accuracy"], 4)), []).append(r)
    front = pareto_front(rows)
    for group in same.values():
        r = group[0]
        ax.scatter(r["latency_ms_p50"], 100 * r["accuracy"], s=30 + 4 * r["size_mb"], alpha=0.7, zorder=3)
    ax.plot(
        [p["latency_ms_p50"] for p in front],
        [100 * p["accuracy"] for p in front],
        color="black",
        lw=1,
        ls="--",
        zorder=2,
        label="Pareto front (every point at least as fast is less accurate)",
    )
    ax.scatter(
        [p["latency_ms_p50"] for p in front],
        [100 * p["accuracy"] for p in front],
        s=[90 + 4 * p["size_mb"] for p in front],
        facecolors="none",
        edgecolors="black",
        lw=1.2,
        zorder=4,
    )
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    fig.canvas.draw()
    groups = list(same.values())
    anchors = [ax.transData.transform((g[0]["latency_ms_p50"], 100 * g[0]["accuracy"])) for g in groups]
    label_y = _label_positions([(float(x), float(y) + 6) for x, y in anchors], min_gap=11)
    for group, (x, y), ly in zip(groups, anchors, label_y, strict=True):
        text = " = ".join(
            f"{r['variant']} ({r['size_mb']:.1f} MB)" if i == 0 else r["variant"] for i, r in enumerate(group)
        )
        tx, ty = ax.transData.inverted().transform((x + 6, ly))
        ax.annotate(
            text,
            (group[0]["latency_ms_p50"], 100 * group[0]["accuracy"]),
            xytext=(tx, ty),
            textcoords="data",
            fontsize=7,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if abs(ly - y - 6) > 1 else None,
        )
    ax.set_xlabel("p50 latency, batch 1, 1 thread (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title} (marker area ~ size)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def size_per_variant(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.5 * len(rows)))
    names = [r["variant"] for r in rows]
    sizes = [r["size_mb"] for r in rows]
    bars = ax.barh(names, sizes, color="tab:blue")
    ax.bar_label(bars, labels=[f"{s:.1f} MB" for s in sizes], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ONNX artifact size (MB)")
    ax.set_xlim(0, max(sizes) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def head_importance_heatmap(scores: dict, path: Path) -> None:
    """Normalised head importance per layer (rows) and head (columns); removed heads crossed out."""
    import numpy as np

    plt = _pyplot()
    heads = scores["heads"]
    width = max(len(h) for h in heads)
    grid = np.full((len(heads), width), np.nan)
    for i, row in enumerate(heads):
        grid[i, : len(row)] = row
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * width, 1.2 + 0.5 * len(heads)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    for layer, removed in scores.get("pruned_heads", {}).items():
        for h in removed:
            ax.text(
                h, int(layer), "x", ha="center", va="center", color="white", fontsize=11, fontweight="bold"
            )
    for layer in scores.get("dropped_layers", []):
        ax.axhline(layer, color="red", lw=2)
    ax.set_xlabel("head")
    ax.set_ylabel("student layer")
    ax.set_xticks(range(width))
    ax.set_yticks(range(len(heads)))
    ax.set_title(f"Head importance ({scores.get('method', '')}, per-layer L2-normalised); x = removed")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
