"""Labelled examples and the prepared dataset artifact (three splits + a stable label map)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    text_pair: str | None = None
    group: str | None = None


def pair_texts(examples) -> list[str] | None:
    """The second texts of a pair task (``""`` where an example has none), or None when no example has one:
    the one rule for "is this a text-pair task" used by training, evaluation and calibration alike."""
    if not any(ex.text_pair is not None for ex in examples):
        return None
    return [ex.text_pair or "" for ex in examples]


def sort_labels(labels: set[str]) -> list[str]:
    """Stable label ids: numeric labels in numeric order, otherwise sorted names."""
    if all(lbl.lstrip("-").isdigit() for lbl in labels):
        return sorted(labels, key=int)
    return sorted(labels)


@dataclass
class PreparedData:
    """What the data stage writes: ``{split}.jsonl`` and ``labels.json`` in one folder."""

    splits: dict[str, list[Example]]
    labels: list[str]

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}

    def label_ids(self, split: str) -> list[int]:
        ids = self.label2id
        return [ids[ex.label] for ex in self.splits[split]]

    def texts(self, split: str, limit: int | None = None) -> tuple[list[str], list[str] | None]:
        """Texts of a split and their pair texts (None for single-text tasks), in split order."""
        examples = self.splits[split][:limit]
        return [ex.text for ex in examples], pair_texts(examples)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for split, examples in self.splits.items():
            with open(folder / f"{split}.jsonl", "w") as fh:
                for ex in examples:
                    fh.write(json.dumps(asdict(ex)) + "\n")
        (folder / "labels.json").write_text(json.dumps({"labels": self.labels}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> PreparedData:
        labels = json.loads((folder / "labels.json").read_text())["labels"]
        splits = {}
        for split in SPLITS:
            with open(folder / f"{split}.jsonl") as fh:
                splits[split] = [Example(**json.loads(line)) for line in fh]
        return cls(splits=splits, labels=labels)

    def stats(self) -> dict:
        out = {"labels": self.labels, "splits": {}}
        for split, examples in self.splits.items():
            counts = {lbl: 0 for lbl in self.labels}
            for ex in examples:
                counts[ex.label] += 1
            groups = {ex.group for ex in examples if ex.group is not None}
            out["splits"][split] = {"examples": len(examples), "per_label": counts, "groups": len(groups)}
        return out
