"""PNG plots: accuracy vs latency, and size per variant."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_latency(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["latency_ms_p50"], 100 * r["accuracy"], s=40 + r["size_mb"])
        ax.annotate(
            r["variant"],
            (r["latency_ms_p50"], 100 * r["accuracy"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, batch 1, 1 thread (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs latency (marker area ~ size)")
    ax.grid(True, alpha=0.3)
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
