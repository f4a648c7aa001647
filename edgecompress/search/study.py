"""The engine: an Optuna study in the run folder (a journal file by default, or any storage URL), a sampler
reseeded by the number of finished trials (a resumed search draws what an uninterrupted one would), a pruner
that stops a trial whose recovery already misses the budget, and workers that share the run folder's stages.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from edgecompress.errors import EdgeCompressError
from edgecompress.search.config import SearchConfig
from edgecompress.search.space import Point, choices, prune_config, suggest, variant_config

SEARCH_DIR = "search"
JOURNAL = "study.journal"
DONE = ("COMPLETE", "PRUNED")


def storage_for(url: str | None, run_dir: Path):
    """The study's storage: ``<run>/search/study.journal`` by default; a ``sqlite:///`` or
    ``postgresql://`` URL is shared by every process (and machine) that opens it."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if url is None:
        folder = run_dir / SEARCH_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    if url.endswith(".journal") or url.endswith(".log"):
        return JournalStorage(JournalFileBackend(url))
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=60,
            grace_period=300,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
        )
    except Exception as exc:  # a bad URL, a missing database driver
        raise EdgeCompressError(
            f"cannot open the study storage: {str(exc).splitlines()[0]}", where="--storage"
        ) from None


class BudgetPruner:
    """Stops a trial when a recovery round's validation drop (the reported value) is already beyond the
    budget: the rounds left remove more, so the trial cannot come back (successive rounds, not epochs)."""

    def __new__(cls, limit: float):
        import optuna

        class _Pruner(optuna.pruners.BasePruner):
            def prune(self, study, trial) -> bool:
                step = trial.last_step
                return step is not None and trial.intermediate_values[step] > limit

        return _Pruner()


def sampler_for(cfg: SearchConfig, grid: dict, seed: int, finished: int):
    """A fresh sampler seeded by (recipe seed, finished trials): what it draws depends only on the study's
    finished trials, so a search killed and resumed draws the same points as one that was not."""
    import optuna

    seed = (seed * 1_000_003 + finished) % 2**32
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(
            {k: v for k, v in grid.items() if len(v) > 1} or {"_": [0]}, seed=seed
        )
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=cfg.startup_trials,
        constraints_func=lambda t: (t.user_attrs.get("constraint", 0.0),),
    )


def open_study(cfg: SearchConfig, recipe, run_dir: Path, storage_url: str | None, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        BudgetPruner(cfg.max_drop + cfg.pruner_margin)
        if cfg.pruner == "budget"
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=name,
        storage=storage_for(storage_url, run_dir),
        direction="minimize",
        load_if_exists=True,
        pruner=pruner,
        sampler=sampler_for(cfg, choices(recipe, cfg.space), recipe.seed, 0),
    )


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def reclaim_stale(study) -> list[int]:
    """Trials left RUNNING by a process of this machine that is gone (kill -9, a power cut): failed, and their
    points queued again so the resumed search finishes them (their finished stages are reused)."""
    from optuna.trial import TrialState

    host, again = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") == host and not _alive(int(worker.get("pid", -1))):
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            again.append(t.number)
    return again


def count(study, states: tuple[str, ...]) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=tuple(TrialState[s] for s in states)))


@dataclass
class TrialRunner:
    """Builds and scores one trial's point in a pipeline over the search's run folder."""

    pipe: object
    cfg: SearchConfig
    teacher: dict  # folder, validation predictions
    log: object

    def recovery_hook(self, trial):
        def on_recovery(step: int, validation: dict) -> None:
            import optuna

            if "accuracy" not in validation:
                return
            drop = 100.0 * (self.teacher["validation_accuracy"] - validation["accuracy"])
            trial.report(drop, step)
            trial.set_user_attr("constraint", drop - self.cfg.max_drop)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", {"step": step, "validation_drop_pts": drop})
                raise optuna.TrialPruned(f"recovery round {step}: {drop:.2f} points down")

        return on_recovery

    def build(self, point: Point, trial=None) -> Path:
        """The point's quantized artifact (every stage cached in the run folder)."""
        from edgecompress.studies.sweep import student_for

        pipe, recipe = self.pipe, self.pipe.recipe
        student = student_for(pipe, point.layers)
        prune = prune_config(recipe, point)
        if prune is None:
            model, source = student, "student"
        else:
            hook = self.recovery_hook(trial) if trial is not None else None
            model, source = (
                pipe.pruned(f"{SEARCH_DIR}/{point.model_name}", prune, student=student, on_recovery=hook),
                "pruned",
            )
        fp32 = f"{SEARCH_DIR}-{point.model_name}-fp32"
        pipe.export(fp32, model)
        qcfg = variant_config(recipe, point, source)
        if point.embeddings is not None:  # another table storage: another variant name
            qcfg = qcfg.model_copy(update={"name": f"{qcfg.name}-e{point.embeddings}"})
        return pipe.quantize(fp32, qcfg)

    def score(self, point: Point, folder: Path) -> dict:
        import numpy as np

        from edgecompress.search import measure

        pipe, data = self.pipe, self.pipe.context.data
        pred = measure.predictions(folder, data, "validation", pipe.context.max_length)
        labels = np.asarray(data.label_ids("validation"))
        drop = measure.paired_drop(
            self.teacher["validation_predictions"], pred, labels, self.cfg.bootstrap, pipe.recipe.seed
        )
        timing = measure.interleaved_latency(
            folder,
            self.teacher["folder"],
            data,
            pipe.recipe.sequence_length,
            self.cfg.latency_runs,
            self.cfg.latency_warmup,
        )
        return {
            "validation_accuracy": drop["accuracy"],
            "validation_drop_pts": drop["drop_pts"],
            "validation_drop_low": drop["drop_low"],
            "validation_drop_high": drop["drop_high"],
            **timing,
            "size_mb": measure.size_mb(folder),
            "artifact": str(folder.relative_to(pipe.run_dir)),
        }

    def run(self, trial, grid: dict) -> float:
        point = suggest(trial, grid)
        trial.set_user_attr("point", point.name)
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        start = time.perf_counter()
        folder = self.build(point, trial)
        figures = self.score(point, folder)
        figures["seconds"] = round(time.perf_counter() - start, 1)
        for k, v in figures.items():
            trial.set_user_attr(k, v)
        trial.set_user_attr("constraint", figures["validation_drop_pts"] - self.cfg.max_drop)
        return figures["latency_ratio"] if self.cfg.objective == "latency" else figures["size_mb"]


def teacher_reference(pipe) -> dict:
    """The teacher's fp32 ONNX: its folder and validation predictions, the reference of every trial."""
    import numpy as np

    from edgecompress.pipeline import TEACHER_VARIANT
    from edgecompress.search import measure

    folder = pipe.export(TEACHER_VARIANT, pipe.teacher())
    data = pipe.context.data
    pred = measure.predictions(folder, data, "validation", pipe.context.max_length)
    accuracy = float(np.mean(pred == np.asarray(data.label_ids("validation"))))
    return {"folder": folder, "validation_predictions": pred, "validation_accuracy": accuracy}


def work(
    study, runner: TrialRunner, grid: dict, cfg: SearchConfig, seed: int, deadline: float | None, tag: str
) -> None:
    """Ask, build, score and tell until the study holds ``cfg.trials`` finished (or running) trials."""
    import optuna
    from optuna.trial import TrialState

    while deadline is None or time.time() < deadline:
        if count(study, ("COMPLETE", "PRUNED", "RUNNING", "WAITING")) >= cfg.trials:
            # a queued (WAITING) trial is still asked for by whoever comes first
            if count(study, ("WAITING",)) == 0:
                return
        study.sampler = sampler_for(cfg, grid, seed, count(study, DONE))
        trial = study.ask()
        n = count(study, DONE) + 1
        try:
            value = runner.run(trial, grid)
        except optuna.TrialPruned as exc:
            study.tell(trial, state=TrialState.PRUNED)
            runner.log(
                f"[search{tag}] trial {trial.number} ({n}/{cfg.trials}) {trial.user_attrs.get('point')}: stopped early, {exc}"
            )
            continue
        except EdgeCompressError as exc:
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
            runner.log(f"[search{tag}] trial {trial.number} {trial.user_attrs.get('point')}: failed: {exc}")
            continue
        except BaseException:  # Ctrl-C: the point is queued again for the resumed search
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            raise
        study.tell(trial, value)
        a = trial.user_attrs
        runner.log(
            f"[search{tag}] trial {trial.number} ({n}/{cfg.trials}) {a['point']}: validation drop "
            f"{a['validation_drop_pts']:.2f} pts [{a['validation_drop_low']:.2f}, {a['validation_drop_high']:.2f}] vs "
            f"teacher, {1 / a['latency_ratio']:.1f}x faster, {a['size_mb']:.2f} MB ({a['seconds']:.0f} s)"
        )
