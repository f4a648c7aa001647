"""``search(recipe, ...)``: the library entry point behind ``edgecompress search``."""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

from edgecompress.config_base import fingerprint
from edgecompress.context import log_to_stderr
from edgecompress.errors import EdgeCompressError
from edgecompress.search import measure, results
from edgecompress.search.config import SearchConfig
from edgecompress.search.space import choices, chosen_recipe, point_of
from edgecompress.search.study import (
    SEARCH_DIR,
    TrialRunner,
    open_study,
    reclaim_stale,
    teacher_reference,
    work,
)


@dataclass
class SearchSummary:
    run_dir: Path
    rows: list[dict]
    chosen: dict | None
    chosen_recipe: Path | None
    table: str


def study_name(recipe, cfg: SearchConfig) -> str:
    """Same recipe (less where it is written and how long the search runs) and budget: the same study."""
    build = recipe.model_dump(mode="json", exclude={"output_dir", "search", "report", "mobile"})
    what = cfg.model_dump(mode="json", exclude={"trials", "timeout_minutes"})
    return f"{recipe.name}-{cfg.objective}-{fingerprint('search', build, what)[:12]}"


def _worker(
    recipe_json: dict, run_dir: str, storage: str | None, name: str, tag: str, deadline: float | None
) -> None:
    """A second (third, ...) process of ``--workers``: the same loop on the same study and run folder."""
    from edgecompress.pipeline import Pipeline
    from edgecompress.recipe import Recipe

    recipe = Recipe.model_validate(recipe_json)
    cfg = recipe.search or SearchConfig()
    with Pipeline(recipe, run_dir, worker=True) as pipe:
        study = open_study(cfg, recipe, Path(run_dir), storage, name)
        runner = TrialRunner(pipe, cfg, teacher_reference(pipe), pipe.log)
        work(study, runner, choices(recipe, cfg.space), cfg, recipe.seed, deadline, tag)


def search(
    recipe,
    output: str | Path | None = None,
    storage: str | None = None,
    workers: int = 1,
    log=log_to_stderr,
) -> SearchSummary:
    """Run (or resume) the recipe's search: trials until ``search.trials`` have finished, then the choice on
    validation, the test figures of the chosen and validation-Pareto points, and search/chosen.yaml."""
    from edgecompress.pipeline import Pipeline

    cfg = recipe.search or SearchConfig()
    if workers < 1:
        raise EdgeCompressError("at least one worker", where="--workers")
    grid = choices(recipe, cfg.space)
    deadline = time.time() + 60 * cfg.timeout_minutes if cfg.timeout_minutes else None
    name = study_name(recipe, cfg)
    with Pipeline(recipe, output, log=log) as pipe:
        pipe.preflight()
        check_head_scopes(recipe, grid["head_scope"])
        run_dir = pipe.run_dir
        teacher = teacher_reference(pipe)  # before the workers start: they only reuse it
        study = open_study(cfg, recipe, run_dir, storage, name)
        again = reclaim_stale(study)
        if again:
            log(
                f"[search] trials {', '.join(map(str, again))} were cut off (their process is gone): queued again"
            )
        log(f"[search] study '{name}': {results_count(study)} trials done of {cfg.trials}")
        spawn = multiprocessing.get_context("spawn")
        others = [
            spawn.Process(
                target=_worker,
                args=(recipe.model_dump(mode="json"), str(run_dir), storage, name, f" w{i}", deadline),
            )
            for i in range(1, workers)
        ]
        for p in others:
            p.start()
        try:
            work(study, TrialRunner(pipe, cfg, teacher, log), grid, cfg, recipe.seed, deadline, "")
        finally:
            for p in others:
                p.join()
        bad = [p.exitcode for p in others if p.exitcode]
        if bad:
            raise EdgeCompressError(
                f"{len(bad)} worker process(es) failed (exit {bad[0]})", where="--workers"
            )
        return finish(pipe, study, cfg, grid, teacher, name)


def check_head_scopes(recipe, scopes: list[str]) -> None:
    """Each head scope the space lists passes the preflight the recipe itself passed (MPNet takes only
    uniform), so a scope the family refuses fails here in one line, before the teacher is trained."""
    from edgecompress.errors import ModelError
    from edgecompress.preflight import check_shapes
    from edgecompress.prune.config import PruneConfig

    prune = recipe.prune or PruneConfig()
    for i, scope in enumerate(scopes):
        if prune.heads.mode == "structured" and scope == prune.heads.scope:
            continue
        shape = {"mode": "structured", "scope": scope, "fraction": 0.5, "count": None, "threshold": None}
        heads = prune.heads.model_copy(update=shape)
        probe = recipe.model_copy(update={"prune": prune.model_copy(update={"heads": heads})})
        try:
            check_shapes(probe, hub_optional=True, install=False)
        except ModelError as exc:
            raise EdgeCompressError(
                f"'{scope}': {exc.message}", where=f"search.space.head_scope.{i}"
            ) from None


def results_count(study) -> int:
    from edgecompress.search.study import DONE, count

    return count(study, DONE)


def finish(pipe, study, cfg: SearchConfig, grid: dict, teacher: dict, name: str) -> SearchSummary:
    """The choice (validation only), then the test split for the chosen and Pareto points, and the files."""
    run_dir, recipe, data = pipe.run_dir, pipe.recipe, pipe.context.data
    rows = results.trial_rows(study, cfg)
    chosen = results.choose(rows)
    front = results.mark_pareto(rows, cfg.objective)
    # the choice is made: now, and only now, the test split
    teacher_test = measure.split_figures(teacher["folder"], data, "test", pipe.context.max_length)
    for r in {id(r): r for r in [*front, *([chosen] if chosen else [])]}.values():
        folder = run_dir / r["artifact"]
        if folder.is_dir():
            test = measure.split_figures(folder, data, "test", pipe.context.max_length)
            r["test_accuracy"], r["test_f1_macro"] = test["accuracy"], test["f1_macro"]
            r["test_drop_pts"] = 100 * (teacher_test["accuracy"] - test["accuracy"])
        else:
            r["note"] = "built by a worker on another machine: no test figures here"
    summary = {
        "name": recipe.name,
        "study": name,
        "objective": cfg.objective,
        "max_drop": cfg.max_drop,
        "trials": len(rows),
        "sampler": cfg.sampler,
        "pruner": cfg.pruner,
        "teacher_validation_accuracy": teacher["validation_accuracy"],
        "teacher_test_accuracy": teacher_test["accuracy"],
        "stopped_early": sum(r["state"] == "PRUNED" for r in rows),
        "seconds_in_trials": sum(r.get("seconds", 0.0) for r in rows),
        "chosen": None,
    }
    folder = run_dir / SEARCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    chosen_path = folder / "chosen.yaml"
    chosen_path.unlink(missing_ok=True)
    if chosen is not None:
        chosen["chosen"] = True
        summary["chosen"] = {k: chosen[k] for k in ("trial", "point", "params", "artifact")}
        note = (
            f"chosen by edgecompress search on validation (objective {cfg.objective}, at most {cfg.max_drop:g} "
            f"points below the teacher's validation accuracy, {len(rows)} trials): trial {chosen['trial']} "
            f"{chosen['point']}, validation drop {chosen['validation_drop_pts']:.2f} points (95% CI "
            f"{chosen['validation_drop_low']:.2f} to {chosen['validation_drop_high']:.2f}), {chosen['x_faster']:.1f}x "
            f"faster than the teacher, {chosen['size_mb']:.2f} MB; every trial in search/search.md"
        )
        write_chosen(recipe, point_of(chosen["params"], grid), run_dir, note, chosen_path)
    results.write_tables(rows, folder, summary)
    (folder / "chosen.json").write_text(json.dumps(summary, indent=1, default=str))
    table = results.markdown(rows, summary)
    (folder / "search.md").write_text(table)
    results.pareto_plot(rows, summary, folder / "pareto.png")
    return SearchSummary(run_dir, rows, chosen, chosen_path if chosen else None, table)


def write_chosen(recipe, point, run_dir: Path, note: str, path: Path) -> None:
    """The chosen recipe, validated like any recipe file, with a header that says where it came from."""
    from edgecompress.recipe import dump_recipe, recipe_from_dict

    built = chosen_recipe(recipe, point, run_dir.absolute(), note)
    checked = recipe_from_dict(built.model_dump(mode="json"), source=str(path))
    path.write_text(
        f"# Written by edgecompress search: {note}.\n"
        f"# `edgecompress run {path}` builds exactly this point, reusing the search's stages.\n"
        + dump_recipe(checked)
    )
