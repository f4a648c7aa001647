"""Which heads and units to remove: static checks of the targets, and selection from importance scores."""

from __future__ import annotations

import math

import numpy as np

from edgecompress.errors import RecipeError
from edgecompress.prune.config import FfnPruningConfig, HeadPruningConfig, PruneConfig


def check_targets(cfg: PruneConfig, heads_per_layer: list[int], units_per_layer: list[int]) -> None:
    """Refuse impossible targets from the shapes alone, before any training starts."""
    h, n_layers, total = cfg.heads, len(heads_per_layer), sum(heads_per_layer)
    if h.mode == "threshold" and h.threshold > 1:
        raise RecipeError(
            f"{h.threshold:g} would remove every head: per-layer normalised importances are at most 1",
            where="prune.heads.threshold",
        )
    if h.mode == "structured":
        if h.scope == "global":
            n = h.count if h.count is not None else fraction_of(h.fraction, total)
            limit = total - (0 if h.allow_layer_drop else n_layers)
            if n > limit or n >= total:
                why = f"the student has {total} heads in {n_layers} layers"
                if not h.allow_layer_drop:
                    why += " and every layer keeps at least one (set allow_layer_drop to remove layers)"
                raise RecipeError(
                    f"{n} heads to remove, but {why}",
                    where=f"prune.heads.{'count' if h.count else 'fraction'}",
                )
        elif h.scope == "uniform" and len(set(heads_per_layer)) > 1:
            raise RecipeError(
                f"uniform head pruning needs the same heads in every layer, but the layers have {heads_per_layer}",
                where="prune.heads.scope",
            )
        else:
            for i, n_h in enumerate(heads_per_layer):
                n = h.count if h.count is not None else fraction_of(h.fraction, n_h)
                if n > n_h or (n == n_h and (h.scope == "uniform" or not h.allow_layer_drop)):
                    if n > n_h:
                        why = ""
                    elif h.scope == "uniform":
                        why = " (uniform removal from every layer would remove them all)"
                    else:
                        why = " (set allow_layer_drop to remove whole layers)"
                    raise RecipeError(
                        f"{n} heads to remove from layer {i}, which has {n_h}{why}",
                        where=f"prune.heads.{'count' if h.count else 'fraction'}",
                    )
    f = cfg.ffn
    if f.enabled and min(units_per_layer) < f.multiple_of:
        raise RecipeError(
            f"a layer has {min(units_per_layer)} units, fewer than multiple_of {f.multiple_of}",
            where="prune.ffn.multiple_of",
        )
    if f.count is not None:
        limit = sum(units_per_layer) - n_layers if f.scope == "global" else min(units_per_layer) - 1
        if f.count > limit:
            scope = "in all layers" if f.scope == "global" else "per layer"
            raise RecipeError(
                f"{f.count} units to remove {scope}, but at most {limit} can go (each layer keeps at least one)",
                where="prune.ffn.count",
            )


def fraction_of(fraction: float, n: int) -> int:
    """How many to remove for a ``fraction`` of ``n``: rounded up, so at least that share goes."""
    return math.ceil(fraction * n - 1e-9)


def _remove_lowest(scores: list[np.ndarray], n: int, keep_one_per_layer: bool) -> dict[int, list[int]]:
    """The ``n`` lowest-scoring entries across layers (ties broken by position), optionally sparing each layer's best."""
    order = sorted((float(s), i, j) for i, layer in enumerate(scores) for j, s in enumerate(layer))
    left = [len(layer) for layer in scores]
    out: dict[int, list[int]] = {i: [] for i in range(len(scores))}
    for _, i, j in order:
        if n <= 0:
            break
        if keep_one_per_layer and left[i] == 1:
            continue
        out[i].append(j)
        left[i] -= 1
        n -= 1
    return out


def select_heads(
    scores: list[np.ndarray], cfg: HeadPruningConfig, n_remove: int | None = None
) -> dict[int, list[int]]:
    """Positions of heads to remove per layer. ``n_remove`` overrides the count (iterative steps)."""
    if cfg.mode == "none":
        return {i: [] for i in range(len(scores))}
    if cfg.mode == "threshold":
        out = {i: [j for j, s in enumerate(layer) if s < cfg.threshold] for i, layer in enumerate(scores)}
        for i, removed in out.items():
            if len(removed) == len(scores[i]) and not cfg.allow_layer_drop:
                best = float(np.max(scores[i]))
                raise RecipeError(
                    f"{cfg.threshold:g} removes all {len(removed)} heads of layer {i} (its best head scores "
                    f"{best:.3f}); lower it or set allow_layer_drop",
                    where="prune.heads.threshold",
                )
        return out
    if cfg.scope == "uniform":
        return _uniform(scores, cfg, n_remove)
    return _structured(
        scores, cfg.count, cfg.fraction, cfg.scope, n_remove, keep_one=not cfg.allow_layer_drop
    )


def _uniform(scores: list[np.ndarray], cfg: HeadPruningConfig, n_remove: int | None) -> dict[int, list[int]]:
    """The same head positions from every layer: the lowest importance summed over the layers."""
    total = np.sum(np.stack([np.asarray(s, dtype=float) for s in scores]), axis=0)
    if n_remove is not None:
        n = n_remove
    else:
        n = cfg.count if cfg.count is not None else fraction_of(cfg.fraction, len(total))
    n = min(n, len(total) - (0 if cfg.allow_layer_drop else 1))
    gone = _remove_lowest([total], n, keep_one_per_layer=not cfg.allow_layer_drop)[0]
    return {i: sorted(gone) for i in range(len(scores))}


def select_units(
    scores: list[np.ndarray], cfg: FfnPruningConfig, n_remove: int | None = None
) -> dict[int, list[int]]:
    """Positions of intermediate units to remove per layer; every layer keeps at least one unit (at least
    ``multiple_of``, and a multiple of it)."""
    if not cfg.enabled:
        return {i: [] for i in range(len(scores))}
    chosen = _structured(scores, cfg.count, cfg.fraction, cfg.scope, n_remove, keep_one=True)
    if cfg.multiple_of > 1:
        for i, layer in enumerate(scores):
            kept = len(layer) - len(chosen[i])
            extra = kept % cfg.multiple_of if kept > cfg.multiple_of else max(0, kept - cfg.multiple_of)
            if extra:
                left = sorted((s, j) for j, s in enumerate(layer) if j not in set(chosen[i]))
                chosen[i] += [j for _, j in left[:extra]]
    return chosen


def _structured(scores, count, fraction, scope, n_remove, keep_one: bool) -> dict[int, list[int]]:
    """The lowest-scoring entries: ``count`` (or ``fraction``) over all layers, or in each layer."""

    def how_many(available: int) -> int:
        if n_remove is not None:
            return n_remove
        return count if count is not None else fraction_of(fraction, available)

    if scope == "global":
        return _remove_lowest(scores, how_many(sum(len(s) for s in scores)), keep_one_per_layer=keep_one)
    return {
        i: _remove_lowest([layer], min(how_many(len(layer)), len(layer)), keep_one_per_layer=keep_one)[0]
        for i, layer in enumerate(scores)
    }


def step_target(total_to_remove: int, step: int, steps: int, removed_so_far: int) -> int:
    """How many to remove at ``step`` (1-based) so that removal grows evenly to the total."""
    return round(total_to_remove * step / steps) - removed_so_far
