"""Data stage: read the source, clean, split deterministically (by group when given), check, save."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecompress.context import StageContext
from edgecompress.data.config import DataConfig
from edgecompress.data.examples import SPLITS, Example, PreparedData, sort_labels
from edgecompress.data.sources import SOURCES, TextDecoder
from edgecompress.errors import DataError

STAGE_VERSION = 3  # 3: hidden files skipped, TSV read without quoting, missing labels refused


def text_key(text: str, pair: str | None = None) -> tuple[str, str | None]:
    """What two texts share when an uncased tokenizer cannot tell them apart: case, accents and spacing gone.

    Duplicates are found by this key, so case variants of one snippet never land in two splits.
    """

    def norm(t: str) -> str:
        decomposed = unicodedata.normalize("NFKD", t)
        return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())

    return norm(text), None if pair is None else norm(pair)


@dataclass
class Cleaning:
    """What the data stage dropped, and why: recorded in its stage.json and shown in the report."""

    empty: int = 0
    duplicates: int = 0  # same text (by text_key) and label as an earlier example
    conflicting_texts: int = 0  # texts given with more than one label: all their rows are dropped
    conflicting_rows: int = 0
    conflict_example: str | None = None
    across_splits: dict[str, int] = field(
        default_factory=dict
    )  # split -> rows dropped, also in a later split
    redecoded_files: list[str] = field(default_factory=list)
    hidden_skipped: list[str] = field(default_factory=list)  # hidden files and folders of a folder source

    def warnings(self) -> list[str]:
        out = []
        if self.conflicting_texts:
            out.append(
                f"warning: data: {self.conflicting_rows} rows dropped: {self.conflicting_texts} texts have more "
                f"than one label (e.g. '{self.conflict_example}')"
            )
        for split, n in self.across_splits.items():
            if n:
                later = "validation or test" if split == "train" else "test"
                out.append(f"warning: data.{split}: {n} rows dropped: the same text is in the {later} split")
        if self.redecoded_files:
            out.append(
                f"warning: data: {len(self.redecoded_files)} files were not valid in data.encoding and were "
                f"decoded with data.fallback_encoding (first: {self.redecoded_files[0]})"
            )
        return out

    def record(self) -> dict:
        out = asdict(self)
        out["redecoded_files"] = {"count": len(self.redecoded_files), "files": self.redecoded_files[:20]}
        out["hidden_skipped"] = {"count": len(self.hidden_skipped), "files": self.hidden_skipped[:20]}
        return out


def _clean(examples: list[Example], cleaning: Cleaning) -> list[Example]:
    """Drop empty texts, duplicates (keeping the first) and texts given with more than one label."""
    labels: dict[tuple, set[str]] = {}
    for ex in examples:
        labels.setdefault(text_key(ex.text, ex.text_pair), set()).add(ex.label)
    seen: set[tuple] = set()
    out = []
    for ex in examples:
        text = " ".join(ex.text.split())
        if not text:
            cleaning.empty += 1
            continue
        key = text_key(ex.text, ex.text_pair)
        if len(labels[key]) > 1:
            cleaning.conflicting_rows += 1
            if key not in seen:
                cleaning.conflicting_texts += 1
                cleaning.conflict_example = cleaning.conflict_example or text[:60]
            seen.add(key)
            continue
        if key in seen:
            cleaning.duplicates += 1
            continue
        seen.add(key)
        out.append(Example(text=text, label=ex.label, text_pair=ex.text_pair, group=ex.group))
    return out


def _drop_shared(splits: dict[str, list[Example]], cleaning: Cleaning) -> None:
    """A text in two splits stays in the later one (test over validation over train): the held-out splits
    are the user's yardstick."""
    later: set[tuple] = set()
    for split in ("test", "validation", "train"):
        kept = [ex for ex in splits[split] if text_key(ex.text, ex.text_pair) not in later]
        if split != "test":
            cleaning.across_splits[split] = len(splits[split]) - len(kept)
        splits[split] = kept
        later |= {text_key(ex.text, ex.text_pair) for ex in kept}


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
    return prepare_with_cleaning(cfg, seed)[0]


def prepare_with_cleaning(cfg: DataConfig, seed: int) -> tuple[PreparedData, Cleaning]:
    """``prepare``, and what it dropped on the way."""
    decoder = TextDecoder(cfg.encoding, cfg.fallback_encoding)
    raw = SOURCES.get(cfg.source)(cfg, decoder)
    cleaning = Cleaning(redecoded_files=decoder.redecoded, hidden_skipped=decoder.hidden_skipped)
    if "all" in raw:
        pool = _clean(raw["all"], cleaning)
        rest, test = _carve(pool, cfg.test_fraction, seed)
        train, validation = _carve(rest, cfg.validation_fraction / (1 - cfg.test_fraction), seed + 1)
        splits = {"train": train, "validation": validation, "test": test}
    else:
        splits = {name: _clean(examples, cleaning) for name, examples in raw.items()}
        if "test" not in splits:
            splits["train"], splits["test"] = _carve(splits["train"], cfg.test_fraction, seed)
        if "validation" not in splits:
            splits["train"], splits["validation"] = _carve(splits["train"], cfg.validation_fraction, seed + 1)
        _drop_shared(splits, cleaning)
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
    return PreparedData(splits=splits, labels=sort_labels(label_sets["train"])), cleaning


def run(cfg: DataConfig, inputs: None, ctx: StageContext, out_dir: Path) -> dict:
    """Writes the three splits and the label list into ``out_dir``; returns their statistics and what was
    dropped (warnings for label conflicts, texts shared by splits and re-decoded files go to the log)."""
    data, cleaning = prepare_with_cleaning(cfg, ctx.seed if cfg.split_seed is None else cfg.split_seed)
    if ctx.is_main_process:
        data.save(out_dir)
        for line in cleaning.warnings():
            ctx.log(line)
    return {**data.stats(), "dropped": cleaning.record()}
