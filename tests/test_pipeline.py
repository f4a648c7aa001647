"""The whole job on a tiny model: artifacts, report, reuse, --force, resume after a crash, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import kl_to_teacher, onnx_accuracy, saved_model_logits, tiny_recipe
from typer.testing import CliRunner

from edgecompress.cli import app
from edgecompress.data.examples import PreparedData
from edgecompress.errors import EdgeCompressError
from edgecompress.pipeline import run_recipe
from edgecompress.recipe import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
VARIANTS = ["teacher-fp32", "student-fp32", "student-int8-dynamic", "student-int8-static"]


@pytest.fixture(scope="module")
def finished_run(tiny_teacher, tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    recipe = recipe_from_dict(tiny_recipe(tiny_teacher, tiny_csv, out))
    summary = run_recipe(recipe, log=lambda _m: None)
    return recipe, out, summary


def test_every_variant_is_a_deployable_folder(finished_run):
    _, out, summary = finished_run
    assert [r["variant"] for r in summary.rows] == VARIANTS
    for name in VARIANTS:
        folder = out / "models" / name
        assert (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["variant"] == name and manifest["recipe"]["name"] == "tiny"
        assert set(manifest["metrics"]) >= {"accuracy", "f1_macro", "latency_ms_p50"}


def test_report_files(finished_run):
    _, out, summary = finished_run
    for name in (
        "report.md",
        "results.csv",
        "report.json",
        "accuracy_vs_latency.png",
        "size_per_variant.png",
        "recipe.yaml",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    bench = json.loads((out / "benchmark" / "benchmark.json").read_text())
    b1_t1 = {r["variant"]: r["p50_ms"] for r in bench["latency"] if (r["batch_size"], r["threads"]) == (1, 1)}
    data = PreparedData.load(out / "data")
    for row in report["rows"]:
        assert {"variant", "artifact", "size_mb", "params", "accuracy", "f1_macro", "latency_ms_p50"} <= set(
            row
        )
        assert (
            not Path(row["artifact"]).is_absolute() and (out / row["artifact"]).is_dir()
        )  # the folder can move
        # each figure is the variant's own: its file's accuracy recomputed here, its batch-1 1-thread median
        assert row["accuracy"] == onnx_accuracy(out / row["artifact"], data), row["variant"]
        assert row["latency_ms_p50"] == b1_t1[row["variant"]]
        onnx_bytes = sum(p.stat().st_size for p in (out / row["artifact"]).glob("*.onnx"))
        assert row["size_mb"] == pytest.approx(onnx_bytes / 1e6, abs=1e-3)
    teacher, int8 = report["rows"][0], report["rows"][2]
    assert int8["size_mb"] < teacher["size_mb"] and int8["params"] < teacher["params"]
    assert report["machine"]["cpu"] and report["machine"]["libraries"]["onnxruntime"]
    assert "x smaller" in (out / "report.md").read_text()
    assert summary.table.splitlines()[0].startswith("| variant |")
    settings = {(r["batch_size"], r["threads"]) for r in bench["latency"]}
    assert settings == {(1, 1), (4, 1)} and all(r["runs"] == 5 for r in bench["latency"])
    assert list((out / "benchmark").glob("latency-*.csv"))


def test_teacher_was_finetuned_and_student_distilled(finished_run):
    _, out, _ = finished_run
    teacher = json.loads((out / "teacher" / "stage.json").read_text())["record"]
    student = json.loads((out / "student" / "stage.json").read_text())["record"]
    assert teacher["finetuned"] is True and teacher["steps"] == 60
    assert student["student"]["init_layers"] == [0, 3] and student["steps"] == 60
    assert teacher["validation"]["accuracy"] > 0.9  # the teacher learnt the task (untrained: about 0.5)
    # distilled, not merely trained: on this data labels alone get every example right too, but the student's
    # distribution is the teacher's (KL measured 0.005; 0.12 with the soft-target term left out of training)
    texts, _ = PreparedData.load(out / "data").texts("validation")
    gap = kl_to_teacher(
        saved_model_logits(out / "teacher", texts), saved_model_logits(out / "student", texts)
    )
    assert gap < 0.03, gap


def test_rerun_reuses_every_stage(finished_run):
    recipe, out, _ = finished_run
    before = (out / "models" / "student-fp32" / "model.onnx").stat().st_mtime_ns
    summary = run_recipe(recipe, log=lambda _m: None)
    assert all(s.reused for s in summary.stages)
    assert (out / "models" / "student-fp32" / "model.onnx").stat().st_mtime_ns == before


def test_changed_config_reruns_only_downstream(finished_run, tmp_path):
    recipe, out, _ = finished_run
    changed = recipe.model_copy(deep=True)
    changed.benchmark.runs = 3
    summary = run_recipe(changed, log=lambda _m: None)
    ran = {s.name for s in summary.stages if not s.reused}
    assert ran == {"benchmark"}


def test_crash_mid_stage_leaves_no_artifact_and_resume_continues(
    tiny_teacher, tiny_csv, tmp_path, monkeypatch
):
    from edgecompress.distill import stage as distill_stage

    out = tmp_path / "run"
    recipe = recipe_from_dict(tiny_recipe(tiny_teacher, tiny_csv, out))
    real = distill_stage.run

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # like Ctrl-C mid-training

    monkeypatch.setattr(distill_stage, "run", crash)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, log=lambda _m: None)
    assert (out / "teacher" / "stage.json").is_file()
    assert not (out / "student").exists() and not list(out.glob(".*partial"))
    monkeypatch.setattr(distill_stage, "run", real)
    summary = run_recipe(recipe, log=lambda _m: None)
    reused = {s.name: s.reused for s in summary.stages}
    assert reused["data"] and reused["teacher"] and not reused["student"]


def test_force_reruns_everything(tiny_teacher, tiny_csv, tmp_path):
    recipe = recipe_from_dict(
        tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "run", quantization={"variants": []})
    )
    run_recipe(recipe, log=lambda _m: None)
    summary = run_recipe(recipe, force=True, log=lambda _m: None)
    assert not any(s.reused for s in summary.stages)


def test_refuses_a_foreign_non_empty_output_folder(tiny_teacher, tiny_csv, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    recipe = recipe_from_dict(tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "mine"))
    with pytest.raises(
        EdgeCompressError, match="output_dir: .* is not empty and was not made by edgecompress"
    ):
        run_recipe(recipe, log=lambda _m: None)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_cli_run_prints_the_table_and_output_override(tiny_teacher, tiny_csv, tmp_path):
    path = tmp_path / "r.yaml"
    recipe = tiny_recipe(
        tiny_teacher, tiny_csv, tmp_path / "ignored", quantization={"variants": [{"method": "int8_dynamic"}]}
    )
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(
        app, ["run", str(path), "--output", str(tmp_path / "cli-run"), "--set", "benchmark.runs=2"]
    )
    assert result.exit_code == 0, result.output
    assert "| student-int8-dynamic |" in result.output
    assert (tmp_path / "cli-run" / "report.md").is_file() and not (tmp_path / "ignored").exists()


def test_cli_run_bad_data_column_is_one_line_exit_2(tiny_teacher, tiny_csv, tmp_path):
    path = tmp_path / "r.yaml"
    recipe = tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out", data={"text_column": "review"})
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: data.path (")
    assert "no column 'review'" in result.output
    assert not (tmp_path / "out" / "data").exists()


def test_local_teacher_with_matching_head_is_not_finetuned(tmp_path, tiny_csv):
    """The hub recipe's loading path (a fine-tuned classifier + hub-style dataset), with local folders."""
    from conftest import make_tiny_bert

    make_tiny_bert(tmp_path / "sst2-teacher", labels=["NEGATIVE", "POSITIVE"], with_head=True)
    hub = yaml.safe_load((ROOT / "recipes" / "bert_base_sst2_hub.yaml").read_text())
    hub["teacher"].update(model=str(tmp_path / "sst2-teacher"), revision=None)
    hub["data"] = {"source": "csv", "path": str(tiny_csv), "max_length": 16}
    hub["student"] = {"num_layers": 2}
    hub["distill"]["training"] = {"max_steps": 2, "batch_size": 8}
    hub["quantization"] = {"variants": []}
    hub["benchmark"] = {"runs": 2, "warmup": 0, "batch_sizes": [1], "threads": [1]}
    hub["output_dir"] = str(tmp_path / "out")
    summary = run_recipe(recipe_from_dict(hub), log=lambda _m: None)
    teacher = json.loads((tmp_path / "out" / "teacher" / "stage.json").read_text())["record"]
    assert teacher["had_matching_head"] is True and teacher["finetuned"] is False
    assert [r["variant"] for r in summary.rows] == ["teacher-fp32", "student-fp32"]
