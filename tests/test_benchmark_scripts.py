"""The scripts under benchmarks/ run end to end on a tiny recipe and print their tables."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import kl_to_teacher, load_script, pytorch_accuracy, saved_model_logits, tiny_recipe

from edgecompress.data.examples import PreparedData


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
    """Each mode's figures are its own model's (recomputed from the saved students), `labels` never used the
    teacher, and what distillation adds shows on the teacher's distribution (the accuracies are all 1 here)."""
    path, run = tiny_run
    assert load_script("distill_ablation").main([str(path), "--modes", "labels,full"]) == 0
    out = capsys.readouterr().out
    assert "| labels |" in out and "| full |" in out
    rows = {r["mode"]: r for r in json.loads((run / "ablation" / "results.json").read_text())}
    assert list(rows) == ["labels", "full"]
    data = PreparedData.load(run / "data")
    folders = {"labels": run / "ablation" / "labels", "full": run / "student"}  # full: the recipe's own stage
    for mode, folder in folders.items():
        assert rows[mode]["test_accuracy"] == pytorch_accuracy(folder, data, "test"), mode
        assert rows[mode]["val_accuracy"] == _record(folder)["validation"]["accuracy"], mode
    assert _record(folders["labels"])["loss_weights"] == {"ce": 1, "kd": 0, "attention": 0, "hidden": 0}
    texts, _ = data.texts("validation")
    teacher = saved_model_logits(run / "teacher", texts)
    gap = {
        mode: kl_to_teacher(teacher, saved_model_logits(folder, texts)) for mode, folder in folders.items()
    }
    assert 3 * gap["full"] < gap["labels"], gap


def _record(stage_dir) -> dict:
    return json.loads((stage_dir / "stage.json").read_text())["record"]


def test_vocab_trim_effect(tiny_run, capsys):
    path, run = tiny_run
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
    # every word of these texts is seen at least 3 times in training, so trimming keeps each tokenisation and
    # the function: every threshold scores what the untrimmed student scores, recomputed here
    data = PreparedData.load(run / "data")
    untrimmed = [pytorch_accuracy(run / "student", data, split) for split in ("validation", "test")]
    assert [[float(r[4]), float(r[5])] for r in sweep] == [pytest.approx(untrimmed, abs=1e-4)] * 3


@pytest.mark.parametrize(
    ("value", "message"), [("1,x", "comma-separated whole numbers"), ("0,2", "at least 1")]
)
def test_vocab_trim_effect_rejects_bad_thresholds_before_any_work(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exit_info:
        load_script("vocab_trim_effect").main([str(tmp_path / "none.yaml"), "--min-frequencies", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--min-frequencies" in err and message in err


def test_sparsity_curve_and_frontier(tiny_run, capsys):
    """Sweep points become cached stages and artifacts; the frontier measures the run's variants and the
    points in one run, marks the Pareto front, plots it, and repeats the final artifact over another seed."""
    path, run = tiny_run
    sweep = load_script("sparsity_curve")
    assert sweep.main([str(path), "--fractions", "0.25,0.5", "--layers", "1,2", "--runs", "3"]) == 0
    out = capsys.readouterr().out
    rows = json.loads((run / "sweep" / "sweep.json").read_text())["rows"]
    assert [r["point"] for r in rows] == ["L1-p25", "L1-p50", "L2-p25", "L2-p50"]
    assert all((run / "models" / r["variant"] / "model.onnx").is_file() for r in rows)
    assert rows[1]["params"] < rows[0]["params"] and rows[2]["params"] > rows[0]["params"]
    assert "| L2-p50 | 2 | 50% |" in out
    frontier = load_script("frontier")
    assert frontier.main([str(path), "--final", "pruned-int8-dynamic", "--seeds", "7", "--runs", "3"]) == 0
    out = capsys.readouterr().out
    record = json.loads((run / "frontier" / "frontier.json").read_text())
    kinds = {r["variant"]: r["kind"] for r in record["rows"]}
    assert kinds["teacher-fp32"] == "run" and kinds["sweep-L1-p25-int8-dynamic"] == "sweep"
    assert any(r["pareto"] for r in record["rows"]) and (run / "frontier" / "frontier.png").is_file()
    seeds = record["seeds"]
    assert [r["seed"] for r in seeds["rows"]] == [0, 7] and len(seeds["final_accuracy"]["values"]) == 2
    assert not (run.parent / "run-seed7" / "report.json").exists()  # only the final artifact's chain
    assert (run.parent / "run-seed7" / "models" / "pruned-int8-dynamic" / "model.onnx").is_file()
    assert "Final artifact `pruned-int8-dynamic`" in out and "mean ± std" in out


def test_frontier_rejects_bad_seeds(tiny_run, capsys):
    path, _ = tiny_run
    with pytest.raises(SystemExit) as exit_info:
        load_script("frontier").main([str(path), "--seeds", "1,x"])
    assert exit_info.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_distill_ablation_on_a_narrower_student(tiny_run, capsys):
    path, run = tiny_run
    argv = [str(path), "--modes", "labels,kd,full", "--tag", "narrow"]
    argv += ["--student-set", "hidden_size=16", "--student-set", "num_attention_heads=2"]
    argv += ["--student-set", "intermediate_size=32", "--student-set", "width_init=teacher"]
    assert load_script("distill_ablation").main(argv) == 0
    out = capsys.readouterr().out
    assert "| kd |" in out and "'hidden_size': 16" in out
    record = json.loads((run / "ablation" / "narrow" / "full" / "stage.json").read_text())["record"]
    assert record["student"]["init"] == "teacher through its principal directions"
    assert [r["mode"] for r in json.loads((run / "ablation" / "narrow" / "results.json").read_text())] == [
        "labels",
        "kd",
        "full",
    ]


def test_wordpiece_choice(tiny_run, capsys, monkeypatch):
    path, _ = tiny_run
    script = load_script("wordpiece_choice")
    monkeypatch.setattr(
        script,
        "CHOICES",
        [("whole vocabulary", None, None, "per_tensor"), ("seen >= 1, int4 blocks", 1, None, "int4")],
    )
    assert script.main([str(path)]) == 0
    lines = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [r[1].strip() for r in lines] == ["whole vocabulary", "seen >= 1, int4 blocks"]
    assert float(lines[1][4]) < float(lines[0][4])  # fewer embedding bytes


def test_teacher_compare_a_run_against_itself(tiny_run, capsys):
    """Same artifact on the same examples: difference 0 with a zero-width interval, and the accuracies are the
    run's own report figures (ONNX Runtime outputs, not a second rule)."""
    _, run = tiny_run
    script = load_script("teacher_compare")
    assert script.main([str(run), str(run), "--variant", "pruned-int8-dynamic", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    record = json.loads((run / "compare" / f"{run.name}.json").read_text())
    for split in ("validation", "test"):
        d = record["difference"][split]
        assert d["a_minus_b_pts"] == d["low"] == d["high"] == 0.0
    report = {r["variant"]: r for r in json.loads((run / "report.json").read_text())["rows"]}
    ours = next(r for r in record["rows"] if r["artifact"] == "pruned-int8-dynamic")
    assert ours["test_accuracy"] == pytest.approx(report["pruned-int8-dynamic"]["accuracy"])
    assert "not told apart" in out


def test_teacher_compare_refuses_runs_of_other_examples(tiny_run, tmp_path, capsys):
    import shutil

    _, run = tiny_run
    other = tmp_path / "other"
    shutil.copytree(run, other)
    lines = (other / "data" / "test.jsonl").read_text().splitlines(keepends=True)
    (other / "data" / "test.jsonl").write_text("".join(lines[:-1]))
    code = load_script("teacher_compare").main([str(run), str(other), "--variant", "pruned-int8-dynamic"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "test splits differ" in err and "data/test.jsonl" in err
    assert (
        load_script("teacher_compare").main([str(run), str(tmp_path), "--variant", "pruned-int8-dynamic"])
        == 2
    )
    assert "is missing" in capsys.readouterr().err


def test_teacher_compare_difference_is_a_minus_b(monkeypatch):
    """A right on every example, B wrong on a fifth of them: A - B = +20 points with an interval above 0."""
    import numpy as np

    from edgecompress.data.examples import Example

    script = load_script("teacher_compare")
    examples = [Example(text=f"t{i}", label=("a", "b")[i % 2]) for i in range(100)]
    data = PreparedData(splits={"train": [], "validation": examples, "test": examples}, labels=["a", "b"])
    gold = np.asarray(data.label_ids("test"))
    wrong = gold.copy()
    wrong[:20] = 1 - wrong[:20]
    preds = {"A": gold, "B": wrong, "T": gold}
    monkeypatch.setattr(script, "predictions", lambda folder, *_a, **_k: preds[str(folder)])
    monkeypatch.setattr(script, "onnx_size_mb", lambda folder: 1.0)

    def run(name, variant):
        return {
            "name": name,
            "data": data,
            "max_length": 8,
            "variant": variant,
            "folder": variant,
            "teacher": "T",
            "teacher_model": name,
        }

    result = script.compare(run("a", "A"), run("b", "B"), resamples=500)
    d = result["difference"]["test"]
    assert d["a_minus_b_pts"] == pytest.approx(20.0) and 0 < d["low"] < 20 < d["high"]
    swapped = script.compare(run("b", "B"), run("a", "A"), resamples=500)["difference"]["test"]
    assert swapped["a_minus_b_pts"] == pytest.approx(-20.0)


def test_frontier_measures_given_artifacts_beside_the_run(tiny_run, tmp_path, capsys):
    """--also NAME=FOLDER: another artifact (here a copy of the student's int8 variant, as a hand-picked point
    kept from another run) measured in the same interleaved run, with the same test figures as the original."""
    import shutil

    path, run = tiny_run
    kept = tmp_path / "kept"
    shutil.copytree(run / "models" / "student-int8-dynamic", kept)
    frontier = load_script("frontier")
    argv = [str(path), "--final", "pruned-int8-dynamic", "--runs", "3", "--also", f"hand-picked={kept}"]
    assert frontier.main(argv) == 0
    rows = {r["variant"]: r for r in json.loads((run / "frontier" / "frontier.json").read_text())["rows"]}
    assert rows["hand-picked"]["kind"] == "given"
    assert rows["hand-picked"]["accuracy"] == rows["student-int8-dynamic"]["accuracy"]
    assert "| hand-picked | given |" in capsys.readouterr().out
    for spec, message in (
        ("nameless", "expected NAME=FOLDER"),
        (f"teacher-fp32={kept}", "already names"),
        (f"x={tmp_path}", "no model.onnx"),
    ):
        assert frontier.main([str(path), "--final", "pruned-int8-dynamic", "--also", spec]) == 2
        assert message in capsys.readouterr().err
