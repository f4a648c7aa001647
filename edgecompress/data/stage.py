"""Data stage: read the source, clean, split deterministically (by group when given), check, save."""

from __future__ import annotations

import random
from pathlib import Path

from edgecompress.context import StageContext
from edgecompress.data.config import DataConfig
from edgecompress.data.examples import SPLITS, Example, PreparedData, sort_labels
from edgecompress.data.sources import SOURCES
from edgecompress.errors import DataError

STAGE_VERSION = 1


def _clean(examples: list[Example]) -> list[Example]:
    """Drop empty texts and exact duplicates (keeping the first occurrence)."""
    seen: set[tuple[str, str | None]] = set()
    out = []
    for ex in examples:
        text = " ".join(ex.text.split())
        key = (text, ex.text_pair)
        if not text or key in seen:
            continue
        seen.add(key)
        out.append(Example(text=text, label=ex.label, text_pair=ex.text_pair, group=ex.group))
    return out


def _carve(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split off about ``fraction`` of the examples; whole groups move together when examples have groups."""
    rng = random.Random(seed)
    if all(ex.group is not None for ex in examples):
        groups = sorted({ex.group for ex in examples})
        rng.shuffle(groups)
        sizes: dict[str, int] = {}
        for ex in examples:
            sizes[ex.group] = sizes.get(ex.group, 0) + 1
        target, taken, chosen = fraction * len(examples), 0, set()
        for g in groups:
            if taken >= target:
                break
            chosen.add(g)
            taken += sizes[g]
        held = [ex for ex in examples if ex.group in chosen]
        rest = [ex for ex in examples if ex.group not in chosen]
        return rest, held
    order = list(range(len(examples)))
    rng.shuffle(order)
    n_held = max(1, round(fraction * len(examples)))
    held_idx = set(order[:n_held])
    return (
        [ex for i, ex in enumerate(examples) if i not in held_idx],
        [examples[i] for i in sorted(held_idx)],
    )


def _subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    if limit is None or len(examples) <= limit:
        return examples
    idx = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in idx]


def prepare(cfg: DataConfig, seed: int) -> PreparedData:
    """Read and split the data named by the recipe; every problem is a DataError naming field/file/column."""
    raw = SOURCES.get(cfg.source)(cfg)
    if "all" in raw:
        pool = _clean(raw["all"])
        rest, test = _carve(pool, cfg.test_fraction, seed)
        train, validation = _carve(rest, cfg.validation_fraction / (1 - cfg.test_fraction), seed + 1)
        splits = {"train": train, "validation": validation, "test": test}
    else:
        splits = {name: _clean(examples) for name, examples in raw.items()}
        if "test" not in splits:
            splits["train"], splits["test"] = _carve(splits["train"], cfg.test_fraction, seed)
        if "validation" not in splits:
            splits["train"], splits["validation"] = _carve(splits["train"], cfg.validation_fraction, seed + 1)
    splits["train"] = _subsample(splits["train"], cfg.max_train_samples, seed)
    for split in ("validation", "test"):
        splits[split] = _subsample(splits[split], cfg.max_eval_samples, seed)
    for split in SPLITS:
        if not splits[split]:
            raise DataError("split is empty after dropping empty texts and duplicates", where=f"data.{split}")
    label_sets = {split: {ex.label for ex in splits[split]} for split in SPLITS}
    if len(label_sets["train"]) < 2:
        raise DataError(
            f"the training split has only one label ({', '.join(label_sets['train'])})", where="data.train"
        )
    for split in ("validation", "test"):
        if label_sets[split] != label_sets["train"]:
            only_here = sorted(label_sets[split] - label_sets["train"])
            missing = sorted(label_sets["train"] - label_sets[split])
            parts = []
            if only_here:
                parts.append(f"{split} has labels not in train: {', '.join(only_here)}")
            if missing:
                parts.append(f"{split} lacks train labels: {', '.join(missing)}")
            raise DataError("labels differ between splits: " + "; ".join(parts), where=f"data.{split}")
    return PreparedData(splits=splits, labels=sort_labels(label_sets["train"]))


def run(cfg: DataConfig, inputs: None, ctx: StageContext, out_dir: Path) -> dict:
    """Writes the three splits and the label list into ``out_dir``; returns their statistics."""
    data = prepare(cfg, ctx.seed)
    if ctx.is_main_process:
        data.save(out_dir)
    return data.stats()
