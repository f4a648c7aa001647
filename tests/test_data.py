"""Data sources, deterministic group-aware splits, and the data errors."""

from __future__ import annotations

import json

import pytest
from conftest import synthetic_rows, write_csv

from edgecompress.data.config import DataConfig
from edgecompress.data.examples import PreparedData, sort_labels
from edgecompress.data.stage import prepare
from edgecompress.errors import DataError


def test_embedded_rotten_tomatoes_split_by_movie():
    data = prepare(DataConfig(), seed=42)
    assert data.labels == ["negative", "positive"]
    sizes = {s: len(v) for s, v in data.splits.items()}
    assert sum(sizes.values()) == 12751  # fresh + rotten, minus duplicates (case and spacing variants too)
    assert 0.08 < sizes["test"] / 12752 < 0.12 and 0.08 < sizes["validation"] / 12752 < 0.12
    movies = {s: {ex.group for ex in v} for s, v in data.splits.items()}
    assert not movies["train"] & movies["test"] and not movies["train"] & movies["validation"]
    assert not movies["validation"] & movies["test"]
    again = prepare(DataConfig(), seed=42)
    assert [ex.text for ex in again.splits["test"]] == [ex.text for ex in data.splits["test"]]
    other = prepare(DataConfig(), seed=7)
    assert [ex.text for ex in other.splits["test"]] != [ex.text for ex in data.splits["test"]]


def test_csv_with_groups(tiny_csv):
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), group_column="movie"), seed=0)
    groups = {s: {ex.group for ex in v} for s, v in data.splits.items()}
    assert not groups["train"] & groups["test"]
    assert sum(len(v) for v in data.splits.values()) == 400


def test_tsv_jsonl_and_folder_sources(tmp_path):
    rows = synthetic_rows(60)
    write_csv(tmp_path / "d.tsv", rows, delimiter="\t")
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps({"review": r["text"], "y": r["label"]}) for r in rows)
    )
    for r_i, r in enumerate(rows):
        folder = tmp_path / "folder" / r["label"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r_i}.txt").write_text(r["text"])
    tsv = prepare(DataConfig(source="tsv", path=str(tmp_path / "d.tsv")), 0)
    jsonl = prepare(
        DataConfig(source="jsonl", path=str(tmp_path / "d.jsonl"), text_column="review", label_column="y"), 0
    )
    folder = prepare(DataConfig(source="folder", path=str(tmp_path / "folder")), 0)
    for data in (tsv, jsonl, folder):
        assert data.labels == ["negative", "positive"]
        assert sum(len(v) for v in data.splits.values()) == 60


def test_explicit_split_files_and_carving(tmp_path):
    train = write_csv(tmp_path / "train.csv", synthetic_rows(100, seed=1))
    test = write_csv(tmp_path / "test.csv", synthetic_rows(20, seed=2))
    data = prepare(DataConfig(source="csv", train=str(train), test=str(test), validation_fraction=0.2), 0)
    assert len(data.splits["test"]) == 20
    assert len(data.splits["validation"]) == 20 and len(data.splits["train"]) == 80


def test_empty_texts_and_duplicates_are_dropped(tmp_path):
    rows = synthetic_rows(40)
    rows += [dict(rows[0]), {"text": "   ", "label": "positive", "movie": "m1"}]
    data = prepare(DataConfig(source="csv", path=str(write_csv(tmp_path / "d.csv", rows))), 0)
    assert sum(len(v) for v in data.splits.values()) == 40


def test_label_ids_are_sorted_and_numeric_aware():
    assert sort_labels({"positive", "negative", "neutral"}) == ["negative", "neutral", "positive"]
    assert sort_labels({"10", "2", "1"}) == ["1", "2", "10"]


def test_missing_column_names_file_and_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", synthetic_rows(20))
    with pytest.raises(DataError) as err:
        prepare(DataConfig(source="csv", path=str(path), text_column="review"), 0)
    msg = str(err.value)
    assert (
        "no column 'review'" in msg
        and str(path) in msg
        and "data.path" in msg
        and "text, label, movie" in msg
    )


def test_missing_key_in_jsonl_names_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:2: no column 'label'"):
        prepare(DataConfig(source="jsonl", path=str(path)), 0)


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(DataError, match="data.path: '.*nope.csv' does not exist"):
        prepare(DataConfig(source="csv", path=str(tmp_path / "nope.csv")), 0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(DataError, match="bad.jsonl:1: not valid JSON"):
        prepare(DataConfig(source="jsonl", path=str(bad)), 0)


def test_empty_split_is_an_error(tmp_path):
    train = write_csv(tmp_path / "train.csv", synthetic_rows(40))
    empty = tmp_path / "test.csv"
    empty.write_text("text,label,movie\n")
    with pytest.raises(DataError, match="data.test: split is empty"):
        prepare(DataConfig(source="csv", train=str(train), test=str(empty)), 0)


def test_labels_differing_between_splits_is_an_error(tmp_path):
    train = write_csv(tmp_path / "train.csv", synthetic_rows(40))
    odd = [dict(r, label="neutral") if i == 0 else r for i, r in enumerate(synthetic_rows(10, seed=3))]
    test = write_csv(tmp_path / "test.csv", odd)
    with pytest.raises(
        DataError, match="data.test: labels differ between splits: test has labels not in train: neutral"
    ):
        prepare(DataConfig(source="csv", train=str(train), test=str(test)), 0)


def test_single_label_is_an_error(tmp_path):
    rows = [dict(r, label="positive") for r in synthetic_rows(30)]
    with pytest.raises(DataError, match="only one label"):
        prepare(DataConfig(source="csv", path=str(write_csv(tmp_path / "d.csv", rows))), 0)


def test_sample_limits_and_roundtrip(tmp_path, tiny_csv):
    data = prepare(DataConfig(source="csv", path=str(tiny_csv), max_train_samples=50, max_eval_samples=10), 0)
    assert len(data.splits["train"]) == 50 and len(data.splits["test"]) == 10
    data.save(tmp_path / "d")
    back = PreparedData.load(tmp_path / "d")
    assert back.labels == data.labels and back.splits == data.splits


def test_hub_source_through_datasets_with_a_local_folder(tmp_path):
    """The hub code path (datasets.load_dataset) with a local folder, ClassLabel ids mapped to names."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    folder = tmp_path / "sst2like"
    (folder / "data").mkdir(parents=True)
    for split, seed, n in (("train", 0, 80), ("validation", 1, 20)):
        rows = synthetic_rows(n, seed=seed)
        ds = datasets.Dataset.from_dict(
            {"sentence": [r["text"] for r in rows], "label": [int(r["label"] == "positive") for r in rows]},
            features=features,
        )
        ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    cfg = DataConfig(source="hub", name=str(folder), train="train", test="validation", text_column="sentence")
    data = prepare(cfg, 0)
    assert data.labels == ["negative", "positive"]
    assert len(data.splits["test"]) == 20
    assert {ex.label for ex in data.splits["train"]} == {"negative", "positive"}


def test_hub_source_unreachable_is_a_clear_error(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(
        datasets.config, "HF_HUB_OFFLINE", True
    )  # as on a machine without the hub, minus the timeouts
    with pytest.raises(DataError, match="data.train: cannot load 'no-such-org/no-such-dataset'"):
        prepare(DataConfig(source="hub", name="no-such-org/no-such-dataset"), 0)


def test_unknown_embedded_corpus():
    with pytest.raises(DataError, match="data.name: unknown embedded corpus 'imdb'"):
        prepare(DataConfig(source="embedded", name="imdb"), 0)
