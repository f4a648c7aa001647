"""The scripts under benchmarks/ run end to end on a tiny recipe and print their tables."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import load_script, tiny_recipe


@pytest.fixture(scope="module")
def tiny_run(tiny_teacher, tiny_csv, tmp_path_factory):
    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import recipe_from_dict

    tmp = tmp_path_factory.mktemp("bench")
    prune = {
        "heads": {"mode": "structured", "fraction": 0.5},
        "vocab": {"enabled": True},
        "importance_batches": 2,
        "recovery": None,
    }
    recipe = tiny_recipe(
        tiny_teacher,
        tiny_csv,
        tmp / "run",
        prune=prune,
        quantization={"variants": [{"method": "int8_dynamic"}]},
    )
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_recipe(recipe_from_dict(recipe), log=lambda _m: None)
    return path, tmp / "run"


def test_distill_ablation(tiny_run, capsys):
    path, run = tiny_run
    assert load_script("distill_ablation").main([str(path), "--modes", "labels,full"]) == 0
    out = capsys.readouterr().out
    assert "| labels |" in out and "| full |" in out
    rows = json.loads((run / "ablation" / "results.json").read_text())
    assert [r["mode"] for r in rows] == ["labels", "full"] and all(0 <= r["test_accuracy"] <= 1 for r in rows)
    assert (run / "ablation" / "labels" / "stage.json").is_file()


def test_vocab_trim_effect(tiny_run, capsys):
    path, _ = tiny_run
    assert load_script("vocab_trim_effect").main([str(path), "--min-frequencies", "1,3"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    trimmed, full = lines[1], lines[2]
    assert trimmed.startswith("| trimmed |") and full.startswith("| full vocabulary |")
    assert int(trimmed.split("|")[2]) < int(full.split("|")[2])
    sweep = [line.split("|") for line in lines if line.split("|")[1].strip() in {"untrimmed", "1", "3"}]
    assert [r[1].strip() for r in sweep] == ["untrimmed", "1", "3"]
    pieces = [int(r[2]) for r in sweep]
    assert pieces[0] == int(full.split("|")[2]) and pieces[0] > pieces[1] >= pieces[2]
    assert all(0 <= float(r[4]) <= 1 for r in sweep)


@pytest.mark.parametrize(
    ("value", "message"), [("1,x", "comma-separated whole numbers"), ("0,2", "at least 1")]
)
def test_vocab_trim_effect_rejects_bad_thresholds_before_any_work(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exit_info:
        load_script("vocab_trim_effect").main([str(tmp_path / "none.yaml"), "--min-frequencies", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--min-frequencies" in err and message in err
