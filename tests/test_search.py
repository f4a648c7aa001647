"""edgecompress search: chosen on validation only, resumable after kill -9, shared by workers without building a
stage twice, and a chosen.yaml that rebuilds the chosen artifact byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import load_script, synthetic_rows, tiny_recipe, write_csv
from typer.testing import CliRunner

from edgecompress import api
from edgecompress.cli import app
from edgecompress.export.artifact import sha256_file
from edgecompress.search.run import study_name
from edgecompress.search.study import BudgetPruner, TrialRunner, storage_for

SPACE = {
    "head_fraction": {"low": 0.25, "high": 0.75, "step": 0.25},
    "ffn_fraction": {"low": 0.25, "high": 0.75, "step": 0.25},
}


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict[str, Path]:
    """Train, validation and test files, and a test file whose labels are all wrong."""
    folder = tmp_path_factory.mktemp("search_data")
    rows = synthetic_rows(360)
    files = {
        "train": write_csv(folder / "train.csv", rows[:240]),
        "validation": write_csv(folder / "validation.csv", rows[240:300]),
        "test": write_csv(folder / "test.csv", rows[300:]),
    }
    flipped = [{**r, "label": "negative" if r["label"] == "positive" else "positive"} for r in rows[300:]]
    files["wrong_test"] = write_csv(folder / "wrong_test.csv", flipped)
    return files


def search_recipe(
    tiny_teacher, splits, out: Path, test: str = "test", recovery_steps: int = 10, **search
) -> Path:
    data = {
        "source": "csv",
        "path": None,
        "train": str(splits["train"]),
        "validation": str(splits["validation"]),
        "test": str(splits[test]),
        "max_length": 16,
    }
    recipe = tiny_recipe(
        tiny_teacher,
        splits["train"],
        out,
        data=data,
        prune={
            "importance_batches": 2,
            "importance_batch_size": 16,
            "heads": {"mode": "structured", "fraction": 0.5},
            "ffn": {"fraction": 0.5},
            "recovery": {"max_steps": recovery_steps, "batch_size": 16, "evals_per_epoch": 1},
        },
        search={
            "objective": "size",
            "trials": 3,
            "latency_runs": 5,
            "latency_warmup": 1,
            "bootstrap": 200,
            "startup_trials": 2,
            "space": SPACE,
            **search,
        },
    )
    recipe["quantization"]["variants"][0]["apply_to"] = ["student", "pruned"]
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def completed(run_dir: Path, recipe_path: Path) -> list[tuple]:
    """(params, value) of the study's finished trials, in the order they finished."""
    import optuna

    from edgecompress.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    study = optuna.load_study(
        study_name=study_name(recipe, recipe.search), storage=storage_for(None, run_dir)
    )
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    return [(tuple(sorted(t.params.items())), round(t.value, 9)) for t in done]


@pytest.fixture(scope="module")
def searched(tiny_teacher, splits, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    path = search_recipe(tiny_teacher, splits, out)
    return path, out, api.search(path)


def test_search_writes_every_trial_and_a_plot(searched):
    _, out, summary = searched
    folder = out / "search"
    for name in ("trials.csv", "trials.json", "search.md", "pareto.png", "chosen.yaml", "chosen.json"):
        assert (folder / name).is_file(), name
    trials = json.loads((folder / "trials.json").read_text())["trials"]
    assert len(trials) == 3 and {t["state"] for t in trials} == {"COMPLETE"}
    for t in trials:
        assert t["validation_drop_low"] <= t["validation_drop_pts"] <= t["validation_drop_high"]
        assert t["size_mb"] > 0 and t["latency_ms_p50"] > 0
        assert (out / t["artifact"] / "model.onnx").is_file()
    chosen = summary.chosen
    assert chosen["size_mb"] == min(t["size_mb"] for t in trials if t["within_budget"])
    assert "test_accuracy" in chosen  # read after the choice


def test_chosen_yaml_validates_and_rebuilds_the_chosen_artifact(searched):
    _, out, summary = searched
    chosen_yaml = out / "search" / "chosen.yaml"
    recipe = api.validate(chosen_yaml)
    variant = f"pruned-{recipe.quantization.variants[0].name}"
    api.run(chosen_yaml)
    rebuilt = out / "models" / variant / "model.onnx"
    assert sha256_file(rebuilt) == sha256_file(out / summary.chosen["artifact"] / "model.onnx")
    assert "\tcopied\tpruned\t" in (out / ".stages.log").read_text()  # the trial's stage, not retrained
    assert "Operating point: chosen by edgecompress search on validation" in (out / "report.md").read_text()


def test_wrong_test_labels_do_not_change_the_choice(searched, tiny_teacher, splits, tmp_path):
    path, out, summary = searched
    wrong = api.search(search_recipe(tiny_teacher, splits, tmp_path / "run", test="wrong_test"))
    assert wrong.chosen["point"] == summary.chosen["point"]
    for a, b in zip(wrong.rows, summary.rows, strict=True):
        assert (a["point"], a["validation_accuracy"], a["size_mb"]) == (
            b["point"],
            b["validation_accuracy"],
            b["size_mb"],
        )
    # the test split was read, after the choice: its wrong labels show there and only there
    assert wrong.chosen["test_accuracy"] == pytest.approx(1 - summary.chosen["test_accuracy"], abs=1e-9)


def test_a_search_killed_mid_trial_resumes_to_the_same_study(tiny_teacher, splits, tmp_path):
    whole = search_recipe(tiny_teacher, splits, tmp_path / "whole", recovery_steps=150)
    api.search(whole)
    cut = search_recipe(tiny_teacher, splits, tmp_path / "cut", recovery_steps=150)
    with open(tmp_path / "cut.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgecompress.cli", "search", str(cut)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
    deadline = time.time() + 180
    partial = None
    while time.time() < deadline and partial is None and proc.poll() is None:
        partial = next((tmp_path / "cut").glob(".search_*.partial"), None)  # a trial's prune stage, mid-build
        time.sleep(0.02)
    assert partial is not None, (tmp_path / "cut.log").read_text()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert completed(tmp_path / "cut", cut) == []  # killed inside its first trial
    api.search(cut)  # resumes: the cut-off trial is queued again
    assert completed(tmp_path / "cut", cut) == completed(tmp_path / "whole", whole)


def test_two_workers_share_the_study_and_build_each_stage_once(tiny_teacher, splits, tmp_path):
    # random points and long recoveries: the second process (a few seconds to start) finds work left
    path = search_recipe(
        tiny_teacher, splits, tmp_path / "run", recovery_steps=150, trials=6, sampler="random"
    )
    summary = api.search(path, workers=2)
    import optuna

    recipe = api.validate(path)
    study = optuna.load_study(
        study_name=study_name(recipe, recipe.search), storage=storage_for(None, tmp_path / "run")
    )
    done = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) >= 6 and len(summary.rows) == len(done)
    assert len({t.user_attrs["worker"]["pid"] for t in done}) == 2  # both worked
    built = [line.split("\t")[2] for line in (tmp_path / "run" / ".stages.log").read_text().splitlines()]
    assert len(built) == len(set(built)), f"built twice: {sorted(b for b in built if built.count(b) > 1)}"


def test_budget_pruner_stops_a_recovery_round_over_the_budget():
    import optuna

    study = optuna.create_study(pruner=BudgetPruner(1.0))
    for drop, stops in ((3.0, True), (0.5, False)):
        trial = study.ask()
        trial.report(drop, 1)
        assert trial.should_prune() is stops
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if stops else optuna.trial.TrialState.FAIL)


def test_recovery_hook_reports_the_drop_and_raises_when_over_budget():
    import optuna

    from edgecompress.search.config import SearchConfig

    study = optuna.create_study(pruner=BudgetPruner(1.0))
    runner = TrialRunner(None, SearchConfig(max_drop=1.0), {"validation_accuracy": 0.9}, print)
    trial = study.ask()
    hook = runner.recovery_hook(trial)
    hook(1, {"accuracy": 0.895})  # half a point down: goes on
    with pytest.raises(optuna.TrialPruned):
        hook(2, {"accuracy": 0.85})  # five points down after round 2
    assert trial.user_attrs["pruned_at"] == {"step": 2, "validation_drop_pts": pytest.approx(5.0)}
    assert trial.user_attrs["constraint"] == pytest.approx(4.0)


@pytest.mark.parametrize(
    "setting, field",
    [
        ("search.space.quantization=[nope]", "search.space.quantization.0"),
        ("search.space.head_fraction={low: 0.8, high: 0.2}", "search.space.head_fraction"),
        ("search.objective=speed", "search.objective"),
        ("search.max_drop=-1", "search.max_drop"),
        ("search.space.layers=[0]", "search.space.layers.0"),
        ("search.space.bogus=1", "search.space.bogus"),
    ],
)
def test_a_bad_search_section_fails_validate_in_one_line(searched, setting, field):
    path, _, _ = searched
    result = CliRunner().invoke(app, ["validate", str(path), "--set", setting])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], result.output


def test_search_cli_flags_are_the_search_fields(searched):
    path, _, _ = searched
    result = CliRunner().invoke(app, ["search", str(path), "--max-drop", "-2"])
    assert result.exit_code == 2 and "search.max_drop" in result.output


def test_search_cost_reads_the_study_it_ran(searched, capsys):
    path, out, summary = searched
    script = load_script("search_cost")
    assert script.main([str(path)]) == 0
    text = capsys.readouterr().out
    assert "3 trials (3 finished, 0 stopped early" in text
    cost = json.loads((out / "search" / "cost.json").read_text())
    assert [r["trial"] for r in cost["trials"]] == [r["trial"] for r in summary.rows]
    assert all(r["seconds"] > 0 for r in cost["trials"]) and cost["total"]["saved_s_estimate"] == 0
    assert set(cost["shared_stages_s"]) == {"teacher", "student"}
    # another budget is another study: named, not silently empty
    assert script.main([str(path), "--max-drop", "7"]) == 2
    assert "no study" in capsys.readouterr().err


def test_search_cost_estimates_the_saving_per_student_depth():
    script = load_script("search_cost")
    row = {"point": "p", "start": 0.0, "end": 1.0, "stopped_at_round": None}
    rows = [
        {**row, "trial": 0, "state": "COMPLETE", "layers": 3, "seconds": 300.0},
        {**row, "trial": 1, "state": "COMPLETE", "layers": 3, "seconds": 500.0},
        {**row, "trial": 2, "state": "COMPLETE", "layers": 2, "seconds": 2000.0},
        {**row, "trial": 3, "state": "PRUNED", "layers": 3, "seconds": 100.0, "stopped_at_round": 1},
        {**row, "trial": 4, "state": "PRUNED", "layers": 4, "seconds": 50.0, "stopped_at_round": 1},
    ]
    total = script.savings(rows)
    # depth 3: median of 300 and 500 is 400, so 300 saved; depth 4 has no finished trial: median of all (500)
    assert rows[3]["full_estimate_s"] == 400 and rows[4]["full_estimate_s"] == 500
    assert total["saved_s_estimate"] == 300 + 450 and total["stopped_early"] == 2
    assert total["saved_share"] == 750 / (2950 + 750)


def test_the_study_stops_trials_only_beyond_the_budget_and_its_margin(searched, tmp_path):
    """max_drop 1.0 with the default margin (half a point of validation noise): 1.3 points down goes on, 1.6
    stops; the space offers "not pruned" (0) by default."""
    import optuna

    from edgecompress.recipe import load_recipe
    from edgecompress.search.config import FractionRange, SearchConfig
    from edgecompress.search.study import open_study

    assert FractionRange().values()[0] == 0.0
    recipe = load_recipe(searched[0])
    study = open_study(SearchConfig(max_drop=1.0), recipe, tmp_path, None, "margin")
    for drop, stops in ((1.3, False), (1.6, True)):
        trial = study.ask()
        trial.report(drop, 1)
        assert trial.should_prune() is stops, drop
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def test_uniform_head_scope_has_its_own_model_name():
    from edgecompress.search.space import Point

    names = {
        scope: Point(2, 0.5, 0.25, scope, 0, 0, "int8", None).model_name
        for scope in ("global", "per_layer", "uniform")
    }
    assert names == {
        "global": "L2-h50-f25-v0-r0",
        "per_layer": "L2-h50-f25-pl-v0-r0",
        "uniform": "L2-h50-f25-un-v0-r0",
    }


def test_head_scope_follows_the_recipe_unless_the_space_names_it(searched):
    """An MPNet recipe prunes heads uniformly: the search's trials must too, without the user repeating it."""
    from edgecompress.recipe import load_recipe
    from edgecompress.search.config import SearchSpace
    from edgecompress.search.space import choices

    recipe = load_recipe(searched[0])
    assert choices(recipe, SearchSpace())["head_scope"] == ["global"]
    heads = recipe.prune.heads.model_copy(update={"scope": "uniform"})
    uniform = recipe.model_copy(update={"prune": recipe.prune.model_copy(update={"heads": heads})})
    assert choices(uniform, SearchSpace())["head_scope"] == ["uniform"]
    assert choices(uniform, SearchSpace(head_scope=["per_layer"]))["head_scope"] == ["per_layer"]


def test_a_head_scope_the_family_refuses_fails_before_the_teacher_is_trained(splits, tmp_path):
    """MPNet's shared relative bias allows only uniform head removal: a space that also lists 'global' is
    refused in one line naming the list item, before any stage runs."""
    from tiny_tokenizers import corpus, save_family

    from edgecompress.errors import EdgeCompressError

    folder = tmp_path / "mpnet"
    save_family(folder, "mpnet", corpus())
    out = tmp_path / "run"
    path = search_recipe(folder, splits, out, space={**SPACE, "head_scope": ["uniform", "global"]})
    raw = yaml.safe_load(path.read_text())
    raw["prune"]["heads"]["scope"] = "uniform"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(EdgeCompressError) as err:
        api.search(path)
    line = str(err.value)
    assert line.startswith("search.space.head_scope.1: 'global': ") and "mpnet" in line and "\n" not in line
    assert not (out / "teacher").exists()


def test_the_chosen_point_is_the_point_the_trial_built():
    """Optuna stores stepped floats with binary noise (0.7000000000000001): the chosen recipe must read the
    fraction the trial built with, or its prune stage gets another key and is trained again."""
    import optuna

    from edgecompress.search.config import FractionRange
    from edgecompress.search.space import point_of, suggest

    grid = {
        "layers": [3],
        "head_fraction": FractionRange().values(),
        "ffn_fraction": FractionRange().values(),
        "head_scope": ["global"],
        "min_frequency": [2],
        "embedding_rank": [0],
        "quantization": ["int8"],
        "embeddings": [None],
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    noisy = 0
    for _ in range(40):
        trial = study.ask()
        built = suggest(trial, grid)
        noisy += any(trial.params[k] != round(trial.params[k], 6) for k in ("head_fraction", "ffn_fraction"))
        assert point_of(trial.params, grid) == built
        study.tell(trial, 1.0)
    assert noisy, "the grid should hold a fraction Optuna stores with binary noise"
