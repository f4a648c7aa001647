"""Bad input, faults and lookalike files (issue "trust", finding 11): every case the harness found ending in a
traceback or read wrong, through ``edgecompress validate`` / ``run``, each a one-line error with exit code 2
(1 for a stage that fails a check) and nothing half-written; and the classes they stand for: every numeric
recipe field bounded and finite, every path the run writes checked before the first stage."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import synthetic_rows, tiny_recipe, write_csv
from pydantic import Field
from typer.testing import CliRunner

from edgecompress.cli import app
from edgecompress.config_base import StageConfig
from edgecompress.data.config import DataConfig
from edgecompress.data.stage import prepare_with_cleaning
from edgecompress.errors import DataError
from edgecompress.recipe import Recipe, recipe_json_schema
from edgecompress.runfolder import LOCK_FILE, MARKER, STAGE_FILE

runner = CliRunner()
BOOKKEEPING = {MARKER, LOCK_FILE, "recipe.yaml"}


def _write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _one_error_line(result, exit_code: int = 2) -> str:
    """The command failed with ``exit_code`` and said why in one line (stage logs may come before it)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]], result.output
    return lines[-1]


def _nothing_half_written(run: Path) -> None:
    """No partial or unfinished stage folder; only bookkeeping and finished stages (with stage.json)."""
    if not run.exists():
        return
    for entry in run.iterdir():
        assert not entry.name.endswith((".partial", ".old")), entry
        hidden_file = entry.name.startswith(".") and entry.is_file()  # locks, the stages log
        if entry.name not in BOOKKEEPING and not hidden_file:
            assert entry.is_dir() and (entry / STAGE_FILE).is_file(), entry


@pytest.fixture
def recipe_file(tiny_teacher, tiny_csv, tmp_path):
    """Writes a tiny recipe (``sections`` as in conftest.tiny_recipe) and returns its path."""

    def write(data_path=tiny_csv, **sections) -> Path:
        return _write_recipe(
            tmp_path / "r.yaml", tiny_recipe(tiny_teacher, data_path, tmp_path / "out", **sections)
        )

    return write


# --- recipes that ended in a traceback --------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, message",
    [
        (-1, "seed: Input should be greater than or equal to 0"),
        (1180591620717411303424, "seed: Input should be less than or equal to 4294967295"),
    ],
)
def test_seed_out_of_range_is_a_schema_error(recipe_file, tmp_path, seed, message):
    path = recipe_file(seed=seed)
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == f"error: {path}: {message}"
    assert _one_error_line(runner.invoke(app, ["run", str(path)])) == f"error: {path}: {message}"
    assert not (tmp_path / "out").exists()


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Nine levels of nine aliases (9**9 values) under unknown keys: refused where the expansion passes the
    limit, counted without expanding anything."""
    lines = ["name: x", "unknown:", "  l0: &l0 [a, a, a, a, a, a, a, a, a]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == (
        f"error: {path}:7: unknown.l4: YAML aliases expand it to more than 10000 values (a recipe has a few "
        "hundred); write the values out"
    )
    result = runner.invoke(app, ["validate", str(path), "--set", "data=&a [*a]"])
    assert _one_error_line(result) == "error: --set data: data.0: a YAML alias that contains itself"


def test_yaml_aliases_that_pyyaml_itself_writes_are_read(tiny_teacher, tiny_csv, tmp_path):
    """yaml.safe_dump writes an anchor and an alias for a dict used twice: such a recipe is fine."""
    training = {"max_steps": 5, "batch_size": 8}
    recipe = tiny_recipe(tiny_teacher, tiny_csv, tmp_path / "out", teacher={"training": training})
    recipe["distill"]["training"] = training
    path = _write_recipe(tmp_path / "shared.yaml", recipe)
    assert "*id001" in path.read_text()
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_yaml_nested_past_the_parsers_recursion(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\nunknown: " + "[" * 5000 + "\n")
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == (
        f"error: {path}: nested too deeply to be a recipe"
    )


def test_output_below_a_file(recipe_file, tmp_path):
    path = recipe_file()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    result = runner.invoke(app, ["run", str(path), "--output", str(a_file / "run")])
    assert _one_error_line(result) == (
        f"error: --output: '{a_file}' is a file, so no run folder can be made at '{a_file / 'run'}'"
    )
    result = runner.invoke(app, ["run", str(path), "--output", str(a_file)])
    assert _one_error_line(result) == f"error: --output: '{a_file}' exists and is not a folder"
    assert a_file.read_text() == "not a folder"


def _refuse_writes_in(monkeypatch, folder: Path) -> None:
    """os.access as a non-root user sees a read-only ``folder`` (the tests run as root, whom chmod does not stop)."""
    real = os.access
    monkeypatch.setattr(
        "edgecompress.runfolder.os.access",
        lambda p, mode, **kw: False if Path(p) == folder and mode & os.W_OK else real(p, mode, **kw),
    )


def test_output_in_a_read_only_folder(recipe_file, tmp_path, monkeypatch):
    read_only = tmp_path / "shared"
    read_only.mkdir()
    _refuse_writes_in(monkeypatch, read_only)
    path = recipe_file(output_dir=str(read_only / "run"))
    assert _one_error_line(runner.invoke(app, ["run", str(path)])) == (
        f"error: output_dir: '{read_only}' is not writable (permission denied), so the run cannot write "
        f"'{read_only / 'run'}'; choose another output folder"
    )
    result = runner.invoke(app, ["run", str(path), "--output", str(read_only)])
    assert _one_error_line(result).startswith(f"error: --output: '{read_only}' is not writable")
    assert list(read_only.iterdir()) == []


def test_output_folder_that_cannot_be_made(recipe_file, tmp_path, monkeypatch):
    """What os.access cannot foresee (ACLs, a read-only mount, a race) fails the same way, leaving nothing."""
    target = tmp_path / "run"
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    result = runner.invoke(app, ["run", str(recipe_file()), "--output", str(target)])
    assert _one_error_line(result) == (
        f"error: --output: cannot write the run folder '{target}' (Permission denied); choose another output "
        "folder"
    )
    assert not target.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_in_a_really_read_only_folder(recipe_file, tmp_path):
    read_only = tmp_path / "shared"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        result = runner.invoke(app, ["run", str(recipe_file()), "--output", str(read_only / "run")])
        assert _one_error_line(result).startswith(f"error: --output: '{read_only}' is not writable")
    finally:
        read_only.chmod(0o755)


@pytest.mark.parametrize("encoding", ["rot13", "base64"])
def test_encoding_that_is_not_a_text_encoding(recipe_file, encoding):
    path = recipe_file(data={"encoding": encoding})
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == (
        f"error: {path}: data.encoding: '{encoding}' is not a text encoding (e.g. utf-8, latin-1, cp1252, utf-16)"
    )
    result = runner.invoke(
        app, ["validate", str(recipe_file()), "--set", f"data.fallback_encoding={encoding}"]
    )
    assert "data.fallback_encoding: " in _one_error_line(result)


@pytest.mark.parametrize(
    "field, value",
    [
        ("distill.temperature", ".inf"),
        ("distill.training.learning_rate", ".inf"),
        ("distill.weights.kd", ".nan"),
        ("teacher.training.epochs", ".inf"),
    ],
)
def test_non_finite_numbers_are_schema_errors(recipe_file, field, value):
    path = recipe_file()
    result = runner.invoke(
        app, ["validate", str(path), "--set", f"{field}={value}", "--set", "teacher.training.max_steps=null"]
    )
    assert _one_error_line(result) == f"error: {path}: {field}: Input should be a finite number"


def test_a_loss_that_stops_being_finite_stops_training(recipe_file, tmp_path, monkeypatch):
    """Training that turns NaN stops at that step with one line naming the stage (exit 1), keeping nothing of it."""
    import torch

    from edgecompress.teacher import stage as teacher_stage

    real = teacher_stage.ce_loss
    calls = []

    def goes_nan_at_step_3(model, batch, extras):
        loss, parts = real(model, batch, extras)
        calls.append(1)
        return (loss * torch.nan if len(calls) == 3 else loss), parts

    monkeypatch.setattr(teacher_stage, "ce_loss", goes_nan_at_step_3)
    result = runner.invoke(app, ["run", str(recipe_file())])
    assert _one_error_line(result, exit_code=1) == (
        "error: fine-tune teacher: the training loss is not finite (nan) at step 3 of 60; lower the learning "
        "rate, or check the loss weights and the data"
    )
    assert len(calls) == 3
    assert not (tmp_path / "out" / "teacher").exists()
    _nothing_half_written(tmp_path / "out")


def test_infinite_epochs_from_code_are_refused_not_an_overflow():
    """A config built in code skips validation (model_copy): the step count still refuses infinity."""
    from edgecompress.errors import StageError
    from edgecompress.training.config import TrainingConfig
    from edgecompress.training.loop import total_steps

    cfg = TrainingConfig(max_steps=None).model_copy(update={"epochs": math.inf})
    with pytest.raises(StageError, match="fine-tune teacher: epochs inf x 12 steps is not a number of steps"):
        total_steps(cfg, 12, "fine-tune teacher")
    assert total_steps(TrainingConfig(epochs=1.5), 12, "x") == 18


def test_lengths_beyond_the_position_table(recipe_file):
    """The tiny teacher has 128 positions; the benchmark's 100000 tokens are beyond any table."""
    path = recipe_file(data={"max_length": 256})
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == (
        "error: data.max_length: 256 tokens per example, but the teacher's position table holds 128 "
        "(max_position_embeddings 128); lower data.max_length"
    )
    result = runner.invoke(app, ["validate", str(recipe_file()), "--set", "benchmark.sequence_length=100000"])
    assert _one_error_line(result).endswith(
        "benchmark.sequence_length: Input should be less than or equal to 4096"
    )


def test_position_table_of_roberta_style_models():
    from transformers import BertConfig, DebertaV2Config, RobertaConfig

    from edgecompress.preflight import position_limit

    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None


def test_teacher_whose_vocab_links_to_a_system_file(recipe_file, tiny_teacher, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    (teacher / "tokenizer.json").unlink()
    (teacher / "vocab.txt").unlink()
    (teacher / "vocab.txt").symlink_to(os.__file__)  # Python's os.py: lines of code, no [UNK]
    path = recipe_file(teacher={"model": str(teacher)})
    message = (
        f"error: teacher.model: the tokenizer in '{teacher}' cannot be loaded or used: WordPiece error: Missing "
        "[UNK] token from the vocabulary"
    )
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == message
    assert _one_error_line(runner.invoke(app, ["run", str(path)])) == message
    _nothing_half_written(tmp_path / "out")


# --- recipes accepted although they should be refused -------------------------------------------------------


def test_a_key_given_twice(recipe_file, tmp_path):
    path = recipe_file()
    text = path.read_text()
    path.write_text(text.replace("seed: 0\n", "seed: 42\n") + "seed: 7\n")
    first = text.splitlines().index("seed: 0") + 1
    last = len(text.splitlines()) + 1
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == (
        f"error: {path}:{last}: seed: given twice (lines {first} and {last})"
    )
    result = runner.invoke(
        app, ["validate", str(recipe_file()), "--set", "distill={temperature: 1, temperature: 2}"]
    )
    assert (
        _one_error_line(result) == "error: --set distill: distill.temperature: given twice (columns 2 and 18)"
    )


def test_two_distill_sections(recipe_file):
    path = recipe_file()
    text = path.read_text()
    path.write_text(text + "distill:\n  temperature: 4.0\n")
    first = text.splitlines().index("distill:") + 1
    last = len(text.splitlines()) + 1
    assert _one_error_line(runner.invoke(app, ["validate", str(path)])) == (
        f"error: {path}:{last}: distill: given twice (lines {first} and {last})"
    )


# --- data files read wrong ---------------------------------------------------------------------------------


def _run_on_data(recipe_file, data: Path, tmp_path: Path, **data_fields) -> str:
    """``edgecompress run`` on ``data``: the one error line; no data stage is left behind."""
    source = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}[data.suffix]
    path = recipe_file(
        data_path=data, data={"source": source, "path": str(data), "group_column": None, **data_fields}
    )
    line = _one_error_line(runner.invoke(app, ["run", str(path)]))
    assert not (tmp_path / "out" / "data").exists()
    _nothing_half_written(tmp_path / "out")
    return line


def test_csv_labels_that_say_nan(recipe_file, tmp_path):
    """What pandas' astype(str) writes for missing labels is not a third class."""
    rows = synthetic_rows(60)
    for i in range(2, 60, 3):
        rows[i]["label"] = "nan"
    data = write_csv(tmp_path / "reviews.csv", rows)
    assert _run_on_data(recipe_file, data, tmp_path) == (
        f"error: {data}:4: missing label ('nan') in column 'label'; drop or label the rows without one (empty, "
        "nan, NaN, NAN, None, null, NULL and <NA> are read as missing)"
    )


def test_jsonl_label_that_is_the_json_nan_literal(recipe_file, tmp_path):
    lines = [json.dumps({"text": r["text"], "label": r["label"]}) for r in synthetic_rows(60)]
    lines[6] = '{"text": "a film 6", "label": NaN}'
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(lines) + "\n")
    assert _run_on_data(recipe_file, data, tmp_path).startswith(
        f"error: {data}:7: missing label ('NaN') in column 'label'"
    )


def test_jsonl_text_that_is_a_list(recipe_file, tmp_path):
    lines = [json.dumps({"text": r["text"], "label": r["label"]}) for r in synthetic_rows(60)]
    lines[4] = json.dumps({"text": ["review 4 ...", "second part"], "label": "positive"})
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(lines) + "\n")
    assert (
        _run_on_data(recipe_file, data, tmp_path)
        == f"error: {data}:5: 'text' is a list, not a string or a number"
    )


def _glue_tsv(path: Path, texts: list[str], labels: list[str]) -> Path:
    """A GLUE-style TSV: tab-separated, nothing quoted."""
    path.write_text(
        "sentence\tlabel\n" + "".join(f"{t}\t{lbl}\n" for t, lbl in zip(texts, labels, strict=True))
    )
    return path


def _texts_and_labels(n: int) -> tuple[list[str], list[str]]:
    rows = synthetic_rows(n)
    return [r["text"] for r in rows], [r["label"] for r in rows]


def test_tsv_texts_that_start_with_a_quoted_word(tmp_path):
    texts, labels = _texts_and_labels(60)
    texts[25] = '"bland" is the word 25'
    path = _glue_tsv(tmp_path / "glue.tsv", texts, labels)
    data, _ = prepare_with_cleaning(DataConfig(source="tsv", path=str(path), text_column="sentence"), 0)
    read = {ex.text for split in data.splits.values() for ex in split}
    assert '"bland" is the word 25' in read and "bland is the word 25" not in read


def test_tsv_stray_quotes_do_not_merge_rows(tmp_path):
    """A '"' at the start of one text and another 10 rows later: 60 lines are 60 examples."""
    texts, labels = _texts_and_labels(60)
    texts[5], texts[15] = '"' + texts[5], '"' + texts[15]
    path = _glue_tsv(tmp_path / "glue.tsv", texts, labels)
    data, _ = prepare_with_cleaning(DataConfig(source="tsv", path=str(path), text_column="sentence"), 0)
    read = [ex.text for split in data.splits.values() for ex in split]
    assert len(read) == 60 and texts[5] in read and texts[15] in read


def test_tsv_row_with_a_tab_inside_a_text(recipe_file, tmp_path):
    texts, labels = _texts_and_labels(60)
    texts[7] = "a film\twith a tab 7"
    data = _glue_tsv(tmp_path / "glue.tsv", texts, labels)
    assert _run_on_data(recipe_file, data, tmp_path, text_column="sentence") == (
        f"error: {data}:9: 3 fields, but the header has 2 (a tab inside a text?)"
    )


def _csv_lines(texts: list[str], labels: list[str]) -> str:
    return "text,label\n" + "".join(f"{t},{lbl}\n" for t, lbl in zip(texts, labels, strict=True))


def test_csv_stray_quote_names_the_line_where_it_opens(recipe_file, tmp_path):
    texts, labels = _texts_and_labels(60)
    texts[5], texts[15] = '"' + texts[5], '"' + texts[15]
    data = tmp_path / "reviews.csv"
    data.write_text(_csv_lines(texts, labels))
    assert _run_on_data(recipe_file, data, tmp_path) == (
        f"error: {data}:7: not valid CSV (',' expected after '\"') in the row that starts here and runs to line "
        '17; a field that starts with \'"\' must be quoted whole, with "" for each quote inside it'
    )


def test_csv_quote_that_swallows_rows(recipe_file, tmp_path):
    """Stray quotes that happen to make valid CSV: rows inside one quoted field are still an error."""
    texts, labels = _texts_and_labels(60)
    texts[5], texts[15] = '"' + texts[5], texts[15] + '"'
    data = tmp_path / "reviews.csv"
    data.write_text(_csv_lines(texts, labels))
    assert _run_on_data(recipe_file, data, tmp_path) == (
        f"error: {data}:7: the quoted field that starts on this line runs to line 17 and holds what reads as a row "
        f"('{f'{texts[6]},{labels[6]}'[:40]}'): a stray '\"'? Quote a whole field, with \"\" for each quote inside it"
    )


def test_csv_text_with_newlines_and_commas_is_one_row(tmp_path):
    rows = synthetic_rows(40)
    rows[3]["text"] = "Loved it.\nSlow, but worth it, 3"
    data, _ = prepare_with_cleaning(
        DataConfig(source="csv", path=str(write_csv(tmp_path / "d.csv", rows))), 0
    )
    read = [ex.text for split in data.splits.values() for ex in split]
    assert len(read) == 40 and "Loved it. Slow, but worth it, 3" in read


def test_folder_source_skips_hidden_files_and_folders(tmp_path):
    root = tmp_path / "corpus"
    for i, row in enumerate(synthetic_rows(40)):
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        (root / row["label"] / f"{i:03d}.txt").write_text(row["text"])
    (root / "positive" / ".hidden.txt").write_text("an editor's scratch notes")
    (root / "positive" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".git").mkdir()
    (root / ".git" / "description.txt").write_text("Unnamed repository")
    data, cleaning = prepare_with_cleaning(DataConfig(source="folder", path=str(root)), 0)
    read = [ex.text for split in data.splits.values() for ex in split]
    assert len(read) == 40 and "an editor's scratch notes" not in read
    assert data.labels == ["negative", "positive"]
    assert cleaning.record()["hidden_skipped"]["count"] == 4


# --- the classes: every numeric field bounded and finite ---------------------------------------------------


def unbounded_numbers(schema: dict) -> list[str]:
    """JSON Schema paths of integer / number fields without both a lower and an upper bound."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number") and "enum" not in node and "const" not in node:
                low = "minimum" in node or "exclusiveMinimum" in node
                high = "maximum" in node or "exclusiveMaximum" in node
                if not (low and high):
                    found.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "#")
    return found


def _float_fields(schema: dict) -> list[tuple[str, str]]:
    """(model name, field) of every number field of the recipe's schema, at any depth."""
    out = []
    for model, spec in [("Recipe", schema), *schema["$defs"].items()]:
        for name, prop in spec.get("properties", {}).items():
            if '"type": "number"' in json.dumps(prop):
                out.append((model, name))
    return out


def _config_classes() -> dict[str, type[StageConfig]]:
    found, todo = {}, [StageConfig]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def test_every_numeric_field_has_both_bounds():
    assert unbounded_numbers(recipe_json_schema()) == []


def test_the_bound_check_catches_a_new_unbounded_field():
    class NewStage(StageConfig):
        steps: int = Field(1, ge=1)
        sizes: list[int] = [1]
        rate: float = Field(0.5, ge=0, le=1)

    assert unbounded_numbers(NewStage.model_json_schema()) == [
        "#/properties/steps",
        "#/properties/sizes/items",
    ]


def test_every_float_field_refuses_inf_and_nan():
    schema = recipe_json_schema()
    classes = _config_classes()
    fields = _float_fields(schema)
    assert ("TrainingConfig", "learning_rate") in fields and ("HeadPruningConfig", "threshold") in fields
    for model, name in fields:
        for value in (math.inf, -math.inf, math.nan):
            try:
                classes[model].model_validate({name: value})
            except Exception as exc:  # pydantic.ValidationError: find this field's error among all of them
                kinds = {e["type"] for e in exc.errors() if e["loc"][:1] == (name,)}
            else:
                kinds = set()
            assert "finite_number" in kinds, (model, name, value, kinds)


def test_seed_bounds_match_what_seeding_accepts():
    """The schema's range is the one NumPy and Accelerate take, at both ends."""
    from edgecompress.training.accel import seed_everything

    seed = Recipe.model_fields["seed"]
    bounds = {type(m).__name__: m for m in seed.metadata}
    low, high = bounds["Ge"].ge, bounds["Le"].le
    seed_everything(low)
    seed_everything(high)
    with pytest.raises(ValueError):
        seed_everything(high + 1)


def test_data_errors_keep_their_type(tmp_path):
    """The API raises DataError (exit 2 in the CLI) for each bad data file, not a reader's own exception."""
    lines = [json.dumps({"text": r["text"], "label": r["label"]}) for r in synthetic_rows(40)]
    lines[9] = json.dumps({"text": {"title": "a film", "body": "dull"}, "label": "negative"})
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:10: 'text' is an object, not a string or a number"):
        prepare_with_cleaning(DataConfig(source="jsonl", path=str(path)), 0)
