"""The library API; the CLI is a thin layer over these functions (same names, same options)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecompress.recipe import Recipe, load_recipe, recipe_json_schema


def validate(
    recipe: str | Path, overrides: dict[str, Any] | None = None, on_note: Callable[[str], None] | None = None
) -> Recipe:
    """Parse and check a recipe file, and the shapes it asks of its models (no weights are loaded, nothing is
    downloaded); raises an EdgeCompressError naming the file or the field. ``on_note`` receives a line for
    each check that could not be made (a hub model out of reach, an embedded model installed on first run)."""
    from edgecompress.preflight import check_shapes

    parsed = load_recipe(recipe, overrides)
    for note in check_shapes(parsed, hub_optional=True, install=False):
        if on_note is not None:
            on_note(note)
    return parsed


def run(
    recipe: str | Path | Recipe,
    output: str | Path | None = None,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
):
    """Run or resume the recipe's whole job; returns a RunSummary (rows, table, stages)."""
    from edgecompress.pipeline import run_recipe

    parsed = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    return run_recipe(parsed, output=output, force=force)


def search(
    recipe: str | Path | Recipe,
    output: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    storage: str | None = None,
    workers: int = 1,
):
    """Search the recipe's ``search.space`` for the fastest (or smallest) artifact within ``search.max_drop``
    validation points of the teacher; returns a SearchSummary (rows, chosen, chosen_recipe, table)."""
    from edgecompress.search.run import search as _search

    parsed = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    return _search(parsed, output=output, storage=storage, workers=workers)


def schema() -> dict[str, Any]:
    """The recipe's JSON Schema."""
    return recipe_json_schema()


def predict(folder: str | Path, texts: list[str]) -> list[dict]:
    """Label and score for each text, from a deployable variant folder."""
    from edgecompress.predict import predict as _predict

    return _predict(folder, texts)
