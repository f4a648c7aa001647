"""The supported-families matrix, run for real, and README's table of it kept true.

A tiny random classifier of each family (2 layers, width 32, 4 heads) with a tokenizer of its own kind, trained
in the test (tests/tiny_tokenizers.py: WordPiece, byte-level BPE or Unigram), goes through one pipeline of the
real stages: teacher fine-tuning, distillation with attention and hidden-state transfer, head + FFN pruning with
vocabulary trimming, ONNX export with parity, int8 dynamic, 4-bit weight-only (Neural Compressor), then
``predict`` on the int8 artifact. Each cell is ``yes``, ``full vocabulary`` (trimming refused in one line,
the vocabulary kept whole) or ``refused`` (the family fails the preflight in one line, before any training).
README.md's table between ``<!-- families-matrix -->`` markers must show the same cells.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import synthetic_rows, tiny_recipe, write_csv
from tiny_tokenizers import TOKENIZERS, bert_tokenizer, corpus, deberta_tokenizer, save_family

from edgecompress import api
from edgecompress.errors import EdgeCompressError
from edgecompress.recipe import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = (
    "bert",
    "electra",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "deberta-v2",
    "mpnet",
    "modernbert",
    "albert",
)
STAGES = ("distill", "prune", "vocab", "export", "int8", "int4", "predict")
TOKENIZER = {
    **TOKENIZERS,
    "electra": bert_tokenizer,
    "albert": deberta_tokenizer,
}  # SentencePiece, [CLS] [SEP]
FAST = {"max_steps": 6, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1}


def readme_matrix() -> dict[str, dict[str, str]]:
    """README's table: model_type -> {stage: cell}."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- families-matrix -->(.*?)<!-- /families-matrix -->", text, re.S)
    assert found, "README.md lost its families-matrix table"
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in found.group(1).strip().splitlines()
        if line.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    assert header[1 : 1 + len(STAGES)] == list(STAGES) or header[2 : 2 + len(STAGES)] == list(STAGES), header
    start = header.index(STAGES[0])
    return {r[0].strip("`"): dict(zip(STAGES, r[start : start + len(STAGES)], strict=True)) for r in body}


def family_recipe(folder: Path, data: Path, out: Path) -> dict:
    return tiny_recipe(
        folder,
        data,
        out,
        teacher={"model": str(folder), "training": FAST},
        distill={"training": FAST, "weights": {"ce": 1.0, "kd": 1.0, "attention": 1.0, "hidden": 1.0}},
        prune={
            "importance_batches": 2,
            "importance_batch_size": 8,
            # uniform: every layer keeps the same 2 of its 4 heads (what MPNet's shared relative bias allows), so
            # each projection stays a multiple of the 4-bit groups
            "heads": {"mode": "structured", "fraction": 0.5, "scope": "uniform"},
            "ffn": {"fraction": 0.5},
            "vocab": {"enabled": True, "min_frequency": 1},
            "steps": 1,
            "recovery": {"max_steps": 2, "batch_size": 16, "evals_per_epoch": 1},
        },
        quantization={
            "variants": [
                {"method": "int8_dynamic", "name": "int8-dynamic", "apply_to": ["pruned"]},
                {
                    "method": "weight_only",
                    "name": "int4",
                    "apply_to": ["pruned"],
                    "algorithm": "rtn",
                    "group_size": 16,
                    "embeddings": "fp32",
                },
            ]
        },
        benchmark={"batch_sizes": [1], "threads": [1], "runs": 2, "warmup": 0},
        report={"plots": False},
    )


def measured_row(family: str, tmp: Path) -> dict[str, str]:
    """Run the family's tiny pipeline; the cells as the run shows them."""
    rows = synthetic_rows(160)
    data = write_csv(tmp / "data.csv", rows)
    folder = tmp / family
    texts = corpus() + [r["text"] for r in rows]
    save_family(folder, family, texts, TOKENIZER[family](texts))
    out = tmp / "run"
    try:
        api.run(recipe_from_dict(family_recipe(folder, data, out)))
    except EdgeCompressError as exc:
        assert "\n" not in str(exc) and family in str(exc), str(exc)
        if (out / "teacher").exists():
            pytest.fail(f"{family}: refused after training began: {exc}")
        return dict.fromkeys(STAGES, "refused")
    stage = json.loads((out / "pruned" / "stage.json").read_text())["record"]
    vocab = stage["vocab"] or {}
    parity = json.loads((out / "models" / "pruned-fp32" / "stage.json").read_text())["record"][
        "parity_vs_pytorch"
    ]
    labels = api.predict(out / "models" / "pruned-int8-dynamic", ["a film i loved", "dull and boring"])
    return {
        "distill": _yes((out / "student" / "stage.json").is_file()),
        "prune": _yes(
            stage["heads_after"] < stage["heads_before"] and stage["units_after"] < stage["units_before"]
        ),
        "vocab": "full vocabulary"
        if "kept_full" in vocab
        else _yes(vocab.get("after", 0) < vocab.get("before", 0)),
        "export": _yes(parity["max_abs_logit_diff"] <= 1e-4),
        "int8": _yes((out / "models" / "pruned-int8-dynamic" / "model.onnx").is_file()),
        "int4": _yes((out / "models" / "pruned-int4" / "model.onnx").is_file()),
        "predict": _yes(len(labels) == 2 and all(r["label"] in ("negative", "positive") for r in labels)),
    }


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def test_readme_lists_every_family_once():
    assert sorted(readme_matrix()) == sorted(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_row_is_what_readme_says(family, tmp_path, one_thread):
    assert measured_row(family, tmp_path) == readme_matrix()[family]
