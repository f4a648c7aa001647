"""The recipe schema: validation, error messages, overrides, JSON Schema and generated docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edgecompress.cli import app
from edgecompress.docs_gen import recipe_markdown
from edgecompress.errors import RecipeError
from edgecompress.recipe import load_recipe, parse_overrides, recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize("name", ["bert_to_tiny.yaml", "smoke.yaml", "bert_base_sst2_hub.yaml"])
def test_shipped_recipes_validate(name):
    recipe = load_recipe(ROOT / "recipes" / name)
    assert recipe.version == 1
    result = runner.invoke(app, ["validate", str(ROOT / "recipes" / name)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_defaults_fill_in():
    recipe = recipe_from_dict({"name": "x"})
    assert recipe.run_dir == Path("runs/x")
    assert recipe.student.num_layers == 3
    assert [v.method for v in recipe.quantization.variants] == ["int8_dynamic", "int8_static"]
    assert recipe.sequence_length == recipe.data.max_length


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"name": "x", "distill": {"temprature": 2}}, "distill.temprature: unknown field"),
        ({"name": "x", "distill": {"training": {"epochs": "many"}}}, "distill.training.epochs"),
        (
            {"name": "x", "distill": {"training": {"epochs": 0}}},
            "distill.training.epochs: Input should be greater than 0",
        ),
        ({"name": "bad name"}, "name: String should match pattern"),
        ({"name": "x", "quantization": {"variants": [{"method": "int3"}]}}, "quantization.variants.0"),
        (
            {
                "name": "x",
                "quantization": {"variants": [{"method": "int8_dynamic"}, {"method": "int8_dynamic"}]},
            },
            "variant names must be unique, repeated: int8-dynamic",
        ),
        (
            {"name": "x", "student": {"num_layers": 2, "init_layers": [0]}},
            "init_layers has 1 entries but num_layers is 2",
        ),
        (
            {"name": "x", "distill": {"layer_mapping": [0, 1]}},
            "distill.layer_mapping has 2 entries but student.num_layers is 3",
        ),
        ({"name": "x", "data": {"source": "csv"}}, "needs exactly one of 'path'"),
        (
            {"name": "x", "data": {"source": "embedded", "path": "a.csv"}},
            "'path' is not used with source 'embedded'",
        ),
        ({"name": "x", "benchmark": {"batch_sizes": [8]}}, "must include 1"),
        (
            {"name": "x", "distill": {"weights": {"ce": 0, "kd": 0, "attention": 0, "hidden": 0}}},
            "all loss weights are 0",
        ),
    ],
)
def test_errors_name_the_field(data, expected):
    with pytest.raises(RecipeError) as err:
        recipe_from_dict(data, source="r.yaml")
    assert str(err.value).startswith("r.yaml: ")
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_validate_error_exit_code_and_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "teacher": {"modle": "a"}}))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {path}: teacher.modle: unknown field"]
    assert "Traceback" not in result.output


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndata:\n  source: [csv\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert f"{path}:" in str(err.value) and "not valid YAML" in str(err.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe(tmp_path / "list.yaml")


def test_set_overrides_are_validated(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n")
    recipe = load_recipe(
        path,
        parse_overrides(["distill.training.epochs=1.5", "student.num_layers=2", "benchmark.threads=[1]"]),
    )
    assert (
        recipe.distill.training.epochs == 1.5
        and recipe.student.num_layers == 2
        and recipe.benchmark.threads == [1]
    )
    with pytest.raises(RecipeError, match="student.num_layers"):
        load_recipe(path, parse_overrides(["student.num_layers=zero"]))
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_overrides(["student.num_layers"])
    result = runner.invoke(app, ["validate", str(path), "--set", "distill.oops=1"])
    assert result.exit_code == 2 and "distill.oops: unknown field" in result.output


def test_schema_command_prints_json_schema():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "edgecompress recipe"
    assert {"data", "teacher", "student", "distill", "quantization", "export", "benchmark"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False


def test_docs_are_generated_from_schema():
    assert (ROOT / "docs" / "recipe.md").read_text().strip() == recipe_markdown().strip(), (
        "docs/recipe.md is stale: run `edgecompress schema --format markdown > docs/recipe.md`"
    )
