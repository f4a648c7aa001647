"""The ``edgecompress`` command: a thin Typer layer over edgecompress.api."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgecompress import __version__
from edgecompress.errors import EdgeCompressError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distil, prune and quantize a transformer text classifier into small, fast ONNX artifacts.",
)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe field: --set distill.training.epochs=1 (repeatable)."),
]


def _fail(exc: EdgeCompressError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(exc.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecompress {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    pass


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (overrides output_dir).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Re-run every stage, ignoring finished ones.")
    ] = False,
    set_: SetOption = None,
) -> None:
    """Run the recipe end to end (resuming finished stages) and print the report table."""
    from edgecompress import api
    from edgecompress.recipe import parse_overrides

    try:
        summary = api.run(recipe, output=output, force=force, overrides=parse_overrides(set_ or []))
    except EdgeCompressError as exc:
        _fail(exc)
    if summary is not None:
        typer.echo(summary.table)
        typer.echo(f"\nreport: {summary.run_dir / 'report.md'}")


@app.command()
def search(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (its search: section, or the defaults).")],
    max_drop: Annotated[
        float | None, typer.Option("--max-drop", help="Validation points a point may lose (search.max_drop).")
    ] = None,
    objective: Annotated[
        str | None, typer.Option("--objective", help="latency or size (search.objective).")
    ] = None,
    trials: Annotated[
        int | None, typer.Option("--trials", help="Trials in the study (search.trials).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Minutes after which no trial starts (search.timeout_minutes)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage", help="Optuna storage URL shared by workers and machines; default the run's journal."
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes working on the study.")] = 1,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (overrides output_dir).")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Find the fastest (or smallest) artifact within an accuracy budget, chosen on validation; writes the
    trials, a Pareto plot and search/chosen.yaml into the run folder."""
    from edgecompress import api
    from edgecompress.recipe import parse_overrides

    given = {"max_drop": max_drop, "objective": objective, "trials": trials, "timeout_minutes": timeout}
    try:
        overrides = parse_overrides(set_ or [])
        overrides.update({f"search.{k}": v for k, v in given.items() if v is not None})
        summary = api.search(recipe, output=output, overrides=overrides, storage=storage, workers=workers)
    except EdgeCompressError as exc:
        _fail(exc)
    typer.echo(summary.table)
    if summary.chosen_recipe is None:
        typer.echo("error: no trial met the accuracy budget (see search/search.md)", err=True)
        raise typer.Exit(1)
    typer.echo(f"chosen: {summary.chosen_recipe}  (edgecompress run {summary.chosen_recipe})")


@app.command()
def validate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")], set_: SetOption = None
) -> None:
    """Check a recipe against the schema (exit code 2 and the field path on error)."""
    from edgecompress import api
    from edgecompress.recipe import parse_overrides

    try:
        parsed = api.validate(
            recipe, parse_overrides(set_ or []), on_note=lambda note: typer.echo(f"note: {note}", err=True)
        )
    except EdgeCompressError as exc:
        _fail(exc)
    typer.echo(
        f"{recipe}: valid (recipe version {parsed.version}, run '{parsed.name}', output {parsed.run_dir})"
    )


@app.command()
def schema(
    format: Annotated[
        str, typer.Option("--format", help="json (JSON Schema) or markdown (docs/recipe.md).")
    ] = "json",
) -> None:
    """Print the recipe's JSON Schema (for editor completion) or its Markdown reference."""
    if format == "json":
        from edgecompress import api

        typer.echo(json.dumps(api.schema(), indent=2))
    elif format == "markdown":
        from edgecompress.docs_gen import recipe_markdown

        typer.echo(recipe_markdown())
    else:
        _fail(EdgeCompressError(f"unknown format '{format}' (json or markdown)", where="--format"))


@app.command()
def predict(
    folder: Annotated[
        Path, typer.Argument(help="A variant folder, e.g. runs/bert_to_tiny/models/student-int8-dynamic.")
    ],
    texts: Annotated[list[str], typer.Argument(help="One or more texts to classify.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Classify text with a deployable ONNX variant; prints label and score."""
    from edgecompress import api

    try:
        results = api.predict(folder, texts)
    except EdgeCompressError as exc:
        _fail(exc)
    for r in results:
        typer.echo(json.dumps(r) if as_json else f"{r['label']}\t{r['score']:.4f}\t{r['text']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
