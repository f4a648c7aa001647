"""What broke when the tool met real files, GPUs, kills and concurrent runs (issue 10), and bf16 training on
CPUs (issue 13): each case with its exact message and exit code."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import synthetic_rows, tiny_recipe, write_csv
from typer.testing import CliRunner

from edgecompress.cli import app
from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare_with_cleaning
from edgecompress.errors import DataError, EdgeCompressError
from edgecompress.pipeline import Pipeline, run_recipe
from edgecompress.recipe import recipe_from_dict
from edgecompress.training.accel import CPU_BF16_FLAGS, make_accelerator, resolve_precision

runner = CliRunner()
QUIET = {"log": lambda _m: None}


def _hashes(run: Path) -> dict[str, str]:
    """sha256 of every weight and ONNX file of a run folder (what a resumed run must reproduce)."""
    files = sorted(run.glob("*/model.safetensors")) + sorted(run.glob("models/*/model.onnx"))
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _rows(run: Path) -> list[tuple]:
    report = json.loads((run / "report.json").read_text())
    return [(r["variant"], r["accuracy"], r["f1_macro"], r["size_mb"], r["params"]) for r in report["rows"]]


def _prune_recipe(teacher, data, out: Path) -> dict:
    return tiny_recipe(
        teacher,
        data,
        out,
        prune={
            "importance_batches": 2,
            "importance_batch_size": 16,
            "heads": {"mode": "structured", "fraction": 0.25},
            "ffn": {"fraction": 0.25},
            "recovery": {"max_steps": 10, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1},
        },
        quantization={"variants": [{"method": "int8_dynamic", "name": "int8-dynamic"}]},
        benchmark={"batch_sizes": [1], "threads": [1], "runs": 2, "warmup": 0},
        report={"plots": False},
    )


@pytest.fixture(scope="module")
def uninterrupted(tiny_teacher, tiny_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    recipe = recipe_from_dict(_prune_recipe(tiny_teacher, tiny_csv, out))
    run_recipe(recipe, **QUIET)
    return recipe, out


# --- 2. a resumed or moved run is the run it resumes ---------------------------------------------------


def test_a_resumed_run_equals_an_uninterrupted_one(uninterrupted, tiny_teacher, tiny_csv, tmp_path):
    _, done = uninterrupted
    # stopped after the teacher; resumed in the same process, whose random state the teacher has moved on
    recipe = recipe_from_dict(_prune_recipe(tiny_teacher, tiny_csv, tmp_path / "run"))
    with Pipeline(recipe, **QUIET) as first:
        first.teacher()
    torch.rand(7)  # whatever else the process did in between
    summary = run_recipe(recipe, **QUIET)
    reused = {s.name: s.reused for s in summary.stages}
    assert reused["teacher"] and not reused["student"] and not reused["pruned"]
    assert _hashes(tmp_path / "run") == _hashes(done) and len(_hashes(done)) >= 6
    assert _rows(tmp_path / "run") == _rows(done)


def test_a_finished_run_resumed_from_a_later_stage_gives_the_same_weights(uninterrupted, tmp_path):
    recipe, done = uninterrupted
    copy = tmp_path / "copy"
    shutil.copytree(done, copy)
    shutil.rmtree(copy / "pruned")  # e.g. deleted to re-run pruning
    summary = run_recipe(recipe, output=copy, **QUIET)
    ran = {s.name for s in summary.stages if not s.reused}
    assert "pruned" in ran and "student" not in ran
    assert _hashes(copy) == _hashes(done) and _rows(copy) == _rows(done)


def test_a_finished_run_folder_can_move(uninterrupted, tmp_path, monkeypatch):
    recipe, done = uninterrupted
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(done, moved)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # another working directory
    summary = run_recipe(recipe, output=moved, **QUIET)
    assert all(s.reused for s in summary.stages)
    report = json.loads((moved / "report.json").read_text())
    assert all((moved / r["artifact"]).is_dir() for r in report["rows"])


# --- 3. two runs on one folder -------------------------------------------------------------------------


def test_a_second_run_on_a_folder_in_use_is_refused(uninterrupted, tmp_path):
    recipe, done = uninterrupted
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    with Pipeline(recipe, **QUIET):  # a run in progress holds the folder
        result = runner.invoke(app, ["run", str(path)])
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"error: output_dir: '{done}' is in use by another edgecompress run (it holds "
            ".edgecompress-run.lock); wait for it to finish or choose another output folder"
        )
    assert runner.invoke(app, ["run", str(path)]).exit_code == 0  # free again once it ends


# --- 8. artifacts that changed after they were written --------------------------------------------------


def test_rerun_refuses_a_stage_whose_files_changed(uninterrupted, tmp_path):
    recipe, done = uninterrupted
    copy = tmp_path / "copy"
    shutil.copytree(done, copy)
    onnx_file = copy / "models" / "student-int8-dynamic" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10])
    with pytest.raises(EdgeCompressError) as err:
        run_recipe(recipe, output=copy, **QUIET)
    assert err.value.exit_code == 2
    assert str(err.value) == (
        f"{copy / 'models' / 'student-int8-dynamic'}: files differ from what the stage wrote (sha256 in "
        "stage.json): model.onnx (changed); delete the folder to rebuild it, or run with --force"
    )


def test_predict_refuses_an_altered_artifact_and_warns_without_manifest(uninterrupted, tmp_path):
    _, done = uninterrupted
    copy = tmp_path / "v"
    shutil.copytree(done / "models" / "student-int8-dynamic", copy)
    ok = runner.invoke(app, ["predict", str(copy), "a great film"])
    assert ok.exit_code == 0 and "warning" not in ok.output
    onnx_file = copy / "model.onnx"
    original = onnx_file.read_bytes()
    onnx_file.write_bytes(original[:100] + b"x" + original[101:])
    bad = runner.invoke(app, ["predict", str(copy), "a great film"])
    assert bad.exit_code == 2
    assert bad.output.strip() == (
        f"error: {copy}: files differ from manifest.json (sha256): model.onnx; the artifact was changed after "
        "edgecompress wrote it: rebuild it (edgecompress run) or restore the files"
    )
    onnx_file.write_bytes(original)
    (copy / "manifest.json").unlink()
    unverified = runner.invoke(app, ["predict", str(copy), "a great film"])
    assert unverified.exit_code == 0
    assert f"warning: {copy}: no manifest.json, the files cannot be verified" in unverified.output


# --- 1. every stage follows the accelerator's device ---------------------------------------------------


def test_importance_moves_each_batch_to_the_models_device(monkeypatch):
    """On a GPU the loader's batches are CPU tensors and the model's weights are not: every importance
    method must bring each batch to the model's device (seen failing on an H200)."""
    from transformers import BertConfig, BertForSequenceClassification

    from edgecompress.prune import importance as imp

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32
        )
    )
    ids = torch.randint(5, 40, (4, 6))
    batches = [
        {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0, 1])}
    ]
    moved = []
    real = imp.on_device
    monkeypatch.setattr(imp, "on_device", lambda batch, device: moved.append(device) or real(batch, device))
    for method in ("gradient", "entropy"):
        heads, units = imp.importance(model, batches, method)
        assert len(heads) == 2 and all(h.shape == (4,) for h in heads) and units[0].shape == (32,)
    assert moved == [imp.model_device(model)] * 2


# --- 7. recipe and CLI edges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": ".."}, "name: Value error, '..' names a folder outside runs/; use letters or digits"),
        ({"seed": True}, "seed: Input should be a valid integer"),
        (
            {"quantization": {"variants": [{"method": "int8_dynamic", "apply_to": ["pruned"]}]}},
            "quantization.variants.0.apply_to: 'pruned' needs a prune section (there is no pruned model to "
            "quantize)",
        ),
    ],
)
def test_recipe_edges_fail_validation(tiny_teacher, tiny_csv, tmp_path, change, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out"), **change}))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: {message}".replace("Value error, ", "")


def test_set_with_broken_yaml_is_one_line(tiny_teacher, tiny_csv, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out")))
    result = runner.invoke(app, ["validate", str(path), "--set", "seed=[1,"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: --set seed: '[1,' is not a YAML value (")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"student": {"num_layers": 9}}, "student.num_layers: 9 layers asked, the teacher has only 4"),
        (
            {"student": {"num_layers": 2, "init_layers": [0, 7]}},
            "student.init_layers: teacher layer 7 does not exist (the teacher has 4)",
        ),
        (
            {"distill": {"layer_mapping": [0, 5]}},
            "distill.layer_mapping: teacher layer 5 does not exist (the teacher has 4)",
        ),
    ],
)
def test_shape_errors_are_caught_by_validate_and_before_any_training(
    tiny_teacher, tiny_csv, tmp_path, change, message
):
    recipe = tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out", **change)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = runner.invoke(app, ["validate", str(path)])
    assert (result.exit_code, result.output.strip()) == (2, f"error: {message}")
    result = runner.invoke(app, ["run", str(path)])
    assert (result.exit_code, result.output.strip().splitlines()[-1]) == (2, f"error: {message}")
    assert not (tmp_path / "out" / "teacher").exists()


def test_a_recipe_that_is_not_utf8(tmp_path):
    for name, raw in (
        ("latin1.yaml", "# café\nname: x\n".encode("latin-1")),
        ("bytes.yaml", b"name: \xff\xfe\x00x"),
    ):
        path = tmp_path / name
        path.write_bytes(raw)
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 2
        byte = raw.index(b"\xe9" if name == "latin1.yaml" else b"\xff")
        assert result.output.strip() == (
            f"error: {path}: not UTF-8 text: byte {byte} is 0x{raw[byte]:02x}; save the recipe as UTF-8 (YAML "
            "files are UTF-8)"
        )


# --- 4. text that is not UTF-8, BOMs, long fields -----------------------------------------------------


def _folder_corpus(root: Path, n: int = 30) -> Path:
    for i, row in enumerate(synthetic_rows(n)):
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        (root / row["label"] / f"{i:03d}.txt").write_text(row["text"] + " café", encoding="utf-8")
    legacy = root / "positive" / "000.txt"
    legacy.write_bytes("a good film for \xa35".encode("latin-1"))  # one Latin-1 file (a pound sign)
    return legacy


def test_a_latin1_file_in_a_folder_corpus(tmp_path):
    legacy = _folder_corpus(tmp_path / "news")
    with pytest.raises(DataError) as err:
        prepare_with_cleaning(DataConfig(source="folder", path=str(tmp_path / "news")), 0)
    assert str(err.value) == (
        f"data.path ({legacy}): not valid utf-8: byte 16 is 0xa3; set data.encoding to the file's encoding "
        "(e.g. latin-1), or data.fallback_encoding to re-decode only the files that are not utf-8"
    )
    cfg = DataConfig(source="folder", path=str(tmp_path / "news"), fallback_encoding="latin-1")
    data, cleaning = prepare_with_cleaning(cfg, 0)
    texts = [ex.text for split in data.splits.values() for ex in split]
    assert "a good film for £5" in texts and sum("café" in t for t in texts) == 29  # the others stay UTF-8
    assert cleaning.record()["redecoded_files"] == {"count": 1, "files": [str(legacy)]}
    assert cleaning.warnings()[-1].startswith("warning: data: 1 files were not valid in data.encoding")


def test_csv_encodings_bom_and_a_one_megabyte_text(tmp_path):
    rows = synthetic_rows(40)
    header = "text,label\n"
    body = "".join(f"{r['text']} naïve,{r['label']}\n" for r in rows)
    (tmp_path / "latin1.csv").write_bytes((header + body).encode("latin-1"))
    with pytest.raises(DataError, match=r"^data.path \(.*latin1.csv\): not valid utf-8: byte \d+ is 0xef; "):
        prepare_with_cleaning(DataConfig(source="csv", path=str(tmp_path / "latin1.csv")), 0)
    data, _ = prepare_with_cleaning(
        DataConfig(source="csv", path=str(tmp_path / "latin1.csv"), encoding="latin-1"), 0
    )
    assert all("naïve" in ex.text for ex in data.splits["train"])
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (header + body).encode("utf-8"))
    data, _ = prepare_with_cleaning(DataConfig(source="csv", path=str(tmp_path / "bom.csv")), 0)
    assert sum(len(v) for v in data.splits.values()) == 40
    long = header + f"{'word ' * 210_000}good,positive\n" + body
    (tmp_path / "long.csv").write_text(long, encoding="utf-8")
    data, _ = prepare_with_cleaning(DataConfig(source="csv", path=str(tmp_path / "long.csv")), 0)
    assert max(len(ex.text) for v in data.splits.values() for ex in v) > 1_000_000


# --- 5. data hygiene across splits -----------------------------------------------------------------------


def test_duplicates_across_splits_case_variants_and_conflicting_labels(tmp_path):
    train_rows, test_rows = synthetic_rows(80, seed=1), synthetic_rows(20, seed=2)
    shared = [dict(r) for r in test_rows[:5]]
    shared[0]["text"] = shared[0]["text"].upper()  # the uncased tokenizer sees the same text
    shared[1]["text"] = "  " + shared[1]["text"].replace(" ", "   ")
    conflict = {"text": "an ambiguous film 999", "label": "positive", "movie": "x"}
    train = write_csv(
        tmp_path / "train.csv", train_rows + shared + [conflict, {**conflict, "label": "negative"}, conflict]
    )
    test = write_csv(tmp_path / "test.csv", test_rows)
    data, cleaning = prepare_with_cleaning(DataConfig(source="csv", train=str(train), test=str(test)), 0)
    record = cleaning.record()
    assert record["conflicting_texts"] == 1 and record["conflicting_rows"] == 3
    assert sum(record["across_splits"].values()) == 5  # from train, or from the validation carved out of it
    test_keys = {ex.text.lower() for ex in data.splits["test"]}
    assert not any(" ".join(ex.text.lower().split()) in test_keys for ex in data.splits["train"])
    assert "ambiguous" not in " ".join(ex.text for v in data.splits.values() for ex in v)
    warnings = cleaning.warnings()
    assert warnings[0] == (
        "warning: data: 3 rows dropped: 1 texts have more than one label (e.g. 'an ambiguous film 999')"
    )
    assert warnings[1].startswith("warning: data.")
    assert warnings[1].split(": ")[2].endswith("rows dropped")


def test_the_report_shows_what_the_data_stage_dropped(uninterrupted):
    _, done = uninterrupted
    record = json.loads((done / "data" / "stage.json").read_text())["record"]
    assert set(record["dropped"]) >= {"empty", "duplicates", "conflicting_rows", "across_splits"}
    assert "Data: train " in (done / "report.md").read_text()


# --- issue 13: training precision ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "asked, cuda, cuda_bf16, flags, used, note",
    [
        ("auto", False, False, {"avx512_bf16", "avx512f"}, "bf16", None),
        ("auto", False, False, {"amx_bf16"}, "bf16", None),
        ("auto", False, False, {"avx512f", "avx2"}, "no", None),
        ("auto", True, True, set(), "bf16", None),
        ("auto", True, False, set(), "no", None),
        ("no", False, False, {"avx512_bf16"}, "no", None),
        ("bf16", False, False, {"avx512_bf16"}, "bf16", None),
        ("bf16", False, False, {"avx2"}, "no", "bf16 asked, but this CPU has none of avx512_bf16, amx_bf16"),
        ("fp16", False, False, {"avx512_bf16"}, "no", "fp16 autocast needs a CUDA GPU"),
        ("fp16", True, True, set(), "fp16", None),
        ("bf16", True, False, set(), "no", "bf16 asked, but this GPU has no bf16 arithmetic"),
    ],
)
def test_precision_resolves_per_device_and_flags(asked, cuda, cuda_bf16, flags, used, note):
    precision = resolve_precision(asked, on_cuda=cuda, cuda_bf16=cuda_bf16, cpu_flags=flags)
    assert precision.used == used
    assert (precision.note is None) if note is None else precision.note.startswith(note)


def test_a_bare_no_for_mixed_precision_means_no(tiny_teacher, tiny_csv, tmp_path):
    """YAML 1.1 reads `no` as false; in the recipe file and in --set it still means fp32 training."""
    from edgecompress.recipe import parse_overrides

    text = yaml.safe_dump(tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "run")) + "mixed_precision: no\n"
    assert recipe_from_dict(yaml.safe_load(text)).mixed_precision == "no"
    overrides = parse_overrides(["mixed_precision=no"])
    recipe = recipe_from_dict(tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "run"), overrides=overrides)
    assert recipe.mixed_precision == "no"
    with pytest.raises(EdgeCompressError, match="mixed_precision"):
        recipe_from_dict({**tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "run"), "mixed_precision": True})


def test_an_unsupported_request_warns_once_and_trains_in_fp32(monkeypatch):
    from edgecompress import machine

    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2"})
    warnings = []
    accelerator = make_accelerator("cpu", "bf16", 0, warn=warnings.append)
    assert accelerator.mixed_precision == "no"
    assert warnings == [
        "warning: mixed_precision: bf16 asked, but this CPU has none of avx512_bf16, amx_bf16: training in fp32"
    ]
    accelerator = make_accelerator("cpu", "fp16", 0, warn=warnings.append)
    assert accelerator.mixed_precision == "no" and warnings[-1] == (
        "warning: mixed_precision: fp16 autocast needs a CUDA GPU: training on this CPU in fp32 (use bf16 or auto)"
    )


def test_bf16_training_is_recorded_deterministic_and_saves_fp32(
    tiny_teacher, tiny_csv, tmp_path, monkeypatch
):
    from safetensors import safe_open

    from edgecompress import machine

    monkeypatch.setattr(machine, "cpu_flags", lambda: set(CPU_BF16_FLAGS))  # bf16 autocast runs on any CPU
    weights = []
    for name in ("a", "b"):
        recipe = recipe_from_dict(
            tiny_recipe(tiny_teacher, tiny_csv, tmp_path / name, mixed_precision="auto")
        )
        with Pipeline(recipe, **QUIET) as pipe:
            teacher, student = pipe.teacher(), pipe.student()
        assert teacher.record["train_precision"] == student.record["train_precision"] == "bf16"
        with safe_open(str(student.path / "model.safetensors"), "pt") as fh:
            assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float32}
        weights.append((student.path / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]  # two bf16 runs, the same weights


def test_the_report_says_which_precision_each_stage_trained_in(uninterrupted):
    _, done = uninterrupted
    md = (done / "report.md").read_text()
    teacher_line = next(line for line in md.splitlines() if line.startswith("| teacher | "))
    assert teacher_line.endswith("| fp32 |")
    assert json.loads((done / "teacher" / "stage.json").read_text())["record"]["train_precision"] == "fp32"


def test_precision_is_part_of_the_training_stage_keys(uninterrupted, tmp_path, monkeypatch):
    from edgecompress import machine

    recipe, done = uninterrupted
    copy = tmp_path / "copy"
    shutil.copytree(done, copy)
    with Pipeline(recipe, output=copy, **QUIET) as pipe:
        assert pipe.teacher().reused
    monkeypatch.setattr(machine, "cpu_flags", lambda: set(CPU_BF16_FLAGS))  # bf16 is what it trains in
    with Pipeline(recipe.model_copy(update={"mixed_precision": "bf16"}), output=copy, **QUIET) as pipe:
        assert not pipe.teacher().reused
