"""The main job: recipe in, deployable ONNX variants and a size/latency/accuracy report out.

data -> teacher (fine-tune) -> student (distill) -> [pruned (prune + recover)] -> export (fp32 ONNX)
-> quantize -> [mobile (.ort)] -> benchmark -> report.
Each stage lives in its own folder under the run folder, keyed by a hash of its config and inputs, so a
finished stage is reused and a changed one re-runs with everything downstream of it. Every stage module
has ``run(config, inputs, context, out_dir)``; this class only wires them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from edgecompress.config_base import fingerprint
from edgecompress.content import content_fingerprint
from edgecompress.context import StageContext, log_to_stderr
from edgecompress.errors import EdgeCompressError
from edgecompress.recipe import Recipe, dump_recipe
from edgecompress.runfolder import RunFolder, StageResult

TEACHER_VARIANT = "teacher-fp32"


class StaleStage(EdgeCompressError):
    """A stage not finished with the key the recipe and code give it now, met by a pipeline that only reuses
    stages (``reuse_only``): what the studies check their points with, without building anything."""

    def __init__(self, name: str):
        super().__init__("not finished with the key the recipe and code give it now", where=name)


def data_inputs(cfg) -> dict:
    """What the data stage reads besides its config, by content: each local file or folder, the embedded
    corpus's file, a hub dataset given as a local folder. Hub ids are their id, subset and split names, which
    the config holds."""
    from edgecompress.data.sources import embedded_corpus_file

    if cfg.source == "embedded":
        corpus = embedded_corpus_file()
        return {"corpus": None if corpus is None else content_fingerprint(corpus)}
    if cfg.source == "hub":
        return {"name": content_fingerprint(cfg.name)} if Path(cfg.name).expanduser().exists() else {}
    fields = ("path", "train", "validation", "test")
    return {f: content_fingerprint(getattr(cfg, f)) for f in fields if getattr(cfg, f) is not None}


@dataclass
class RunSummary:
    run_dir: Path
    rows: list[dict]
    table: str
    stages: list[StageResult]


class Pipeline:
    """The stages of one recipe over one run folder; each method runs (or reuses) one stage.

    ``run()`` chains them all; the studies behind benchmarks/ call the pieces they need.
    """

    def __init__(
        self,
        recipe: Recipe,
        output: str | Path | None = None,
        force: bool = False,
        log=log_to_stderr,
        reuse_only: bool = False,
        worker: bool = False,
    ):
        from edgecompress.quiet import quiet_third_party
        from edgecompress.training.accel import make_accelerator

        quiet_third_party()
        self.recipe = recipe
        self.accelerator = make_accelerator(recipe.device, recipe.mixed_precision, recipe.seed, warn=log)
        self.main = self.accelerator.is_main_process
        # what training computes in here (auto resolved), which the training stages' keys hold
        self.train_precision = self.accelerator.mixed_precision
        self.reuse_only = reuse_only  # a stage not finished with its key raises StaleStage instead of running
        self._contents: dict[str, dict | None] = {}  # model spec -> content fingerprint, once per run
        self.distributed = self.accelerator.num_processes > 1  # stages synchronise the processes while True
        self.run_dir = Path(output) if output else recipe.run_dir
        self.folder = RunFolder(  # a search worker shares the folder its parent process holds the lock of
            self.run_dir,
            force=force,
            is_main_process=self.main,
            where="--output" if output else "output_dir",
            hold_lock=not worker,
        )
        self.log = log if self.main else (lambda _msg: None)
        self.keys: dict[str, str] = {}  # stage or variant name -> its key
        self.variants: dict[str, Path] = {}  # variant name -> its folder, in report order
        self.model_dirs: dict[str, Path] = {}  # fp32 variant name -> the PyTorch model folder it came from
        self.results: dict[str, StageResult] = {}  # stage name -> its result in this run
        self._context = StageContext(
            self.accelerator,
            None,
            recipe.seed,
            recipe.data.max_length,
            self.log,
            recipe.model_dump(mode="json"),
            self.run_dir,
        )
        if self.main:
            (self.run_dir / "recipe.yaml").write_text(dump_recipe(recipe))

    @property
    def context(self) -> StageContext:
        """The stage context, with the prepared data (the data stage runs first if needed)."""
        if self._context.data is None:
            self._context = replace(self._context, data=self.data())
        return self._context

    def stage(
        self, name: str, key: str, build, seed_name: str | None = None, copyable: bool = False
    ) -> StageResult:
        """Reuse the finished stage ``name`` with this key, or run ``build(tmp_dir) -> record``.

        A stage that runs starts from random state seeded by (recipe seed, ``seed_name`` or its name) alone,
        so what it produces depends only on its key, not on what ran before it in this process. A
        ``copyable`` stage (a training stage: its files do not name it) finished with the same key under
        another name is copied instead of trained again (the chosen recipe of a search reuses its trial).
        """
        from edgecompress.training.accel import seed_everything, stage_seed

        if name in self.results and self.results[name].key == key:  # asked again in this run: no re-run
            return self.results[name]
        done = self.folder.finished(name, key) is not None
        twin = None
        if not done and copyable and not self.distributed and not self.folder.force:
            twin = self.folder.finished_elsewhere(key)
        if not done and twin is None and self.reuse_only:
            raise StaleStage(name)
        state = "reused (finished earlier)" if done else "running"
        if twin is not None:
            state = f"copied from {twin.relative_to(self.run_dir)} (same key)"
        self.log(f"[{name}] {state}")

        def seeded_build(tmp: Path) -> dict:
            seed_everything(stage_seed(self.recipe.seed, seed_name or name))
            return build(tmp)

        result = self.folder.stage(name, key, seeded_build, sync=self._sync, copy_from=twin)
        if not result.reused:
            self.log(f"[{name}] done in {result.seconds:.1f} s")
        self.results[name] = result
        self.keys[name] = key
        return result

    def model_contents(self, spec: str | None, field: str) -> dict | None:
        """The content fingerprint of a model the recipe names, when it is local (a folder, or an embedded
        package's folder); None for hub ids, whose id and revision the config holds."""
        from edgecompress.modeling.loading import resolve

        if spec is None:
            return None
        if spec not in self._contents:
            src = resolve(spec, field)
            self._contents[spec] = content_fingerprint(src.location) if src.is_local else None
        return self._contents[spec]

    def _sync(self) -> None:
        if self.distributed:
            self.accelerator.wait_for_everyone()

    def data(self):
        from edgecompress.data import stage as data_stage
        from edgecompress.data.examples import PreparedData

        if self._context.data is not None:
            return self._context.data
        r = self.recipe
        key = fingerprint("data", data_stage.STAGE_VERSION, r.data, r.seed, data_inputs(r.data))
        result = self.stage("data", key, lambda tmp: data_stage.run(r.data, None, self._context, tmp))
        return PreparedData.load(result.path)

    def teacher(self) -> StageResult:
        from edgecompress.teacher import stage as teacher_stage

        ctx, r = self.context, self.recipe
        key = fingerprint(
            "teacher",
            teacher_stage.STAGE_VERSION,
            r.teacher,
            self.model_contents(r.teacher.model, "teacher.model"),
            self.keys["data"],
            r.seed,
            ctx.max_length,
            self.train_precision,
        )
        return self.stage("teacher", key, lambda tmp: teacher_stage.run(r.teacher, None, ctx, tmp))

    def student(self, name: str = "student", distill_cfg=None, student_cfg=None) -> StageResult:
        """Distil the recipe's student; the studies pass another DistillConfig (ablations) or StudentConfig
        (other shapes) and a stage name of their own. Every student starts from the same random state."""
        from edgecompress.distill import stage as distill_stage
        from edgecompress.distill.config import StudentStageConfig

        teacher, ctx, r = self.teacher(), self.context, self.recipe
        cfg = StudentStageConfig(student=student_cfg or r.student, distill=distill_cfg or r.distill)
        key = fingerprint(
            "student",
            distill_stage.STAGE_VERSION,
            cfg,
            self.model_contents(cfg.student.model, "student.model"),
            teacher.key,
            r.seed,
            ctx.max_length,
            self.train_precision,
        )
        inputs = distill_stage.DistillInputs(teacher.path)
        return self.stage(
            name,
            key,
            lambda tmp: distill_stage.run(cfg, inputs, ctx, tmp),
            seed_name="student",
            copyable=True,
        )

    def preflight(self) -> None:
        """Checks that need only the models' shapes, before any training (see preflight.py)."""
        from edgecompress.preflight import check_shapes

        check_shapes(self.recipe)

    def pruned(
        self,
        name: str = "pruned",
        prune_cfg=None,
        student: StageResult | None = None,
        on_recovery=None,
    ) -> StageResult:
        """Prune the distilled student and recover; the folder also holds importance.json. The studies pass
        another PruneConfig, student and stage name (sweeps); a search passes ``on_recovery(step,
        validation)``, called after each recovery round (it may raise to stop the trial)."""
        from edgecompress.prune import stage as prune_stage
        from edgecompress.prune.config import PruneStageConfig

        student, teacher, ctx, r = student or self.student(), self.teacher(), self.context, self.recipe
        cfg = PruneStageConfig(prune=prune_cfg or r.prune, distill=r.distill)
        key = fingerprint(
            "prune",
            prune_stage.STAGE_VERSION,
            cfg,
            student.key,
            teacher.key,
            r.seed,
            ctx.max_length,
            self.train_precision,
        )
        inputs = prune_stage.PruneInputs(
            student.path, teacher.path, student.record["student"].get("init_layers")
        )
        if on_recovery is not None:
            ctx = replace(ctx, on_recovery=on_recovery)
        return self.stage(
            name, key, lambda tmp: prune_stage.run(cfg, inputs, ctx, tmp), seed_name="pruned", copyable=True
        )

    def export(self, variant: str, model: StageResult) -> Path:
        """The ONNX variant ``variant`` of the PyTorch model a training stage wrote."""
        from edgecompress.export import stage as export_stage

        ctx, cfg = self.context, self.recipe.export
        key = fingerprint("export", export_stage.STAGE_VERSION, cfg, model.key, ctx.max_length)
        inputs = export_stage.ExportInputs(model.path, variant)
        result = self.stage(f"models/{variant}", key, lambda tmp: export_stage.run(cfg, inputs, ctx, tmp))
        self.keys[variant] = key
        self.variants[variant] = result.path
        self.model_dirs[variant] = model.path
        return result.path

    def quantize(self, source: str, qcfg) -> Path:
        """The variant ``<model>-<qcfg.name>`` quantized from the fp32 variant ``source``."""
        from edgecompress.machine import isa_preset
        from edgecompress.quantize import stage as quantize_stage

        ctx = self.context
        variant = f"{source.removesuffix('-fp32')}-{qcfg.name}"
        listed = self.recipe.quantization.variants
        where = f"quantization.variants.{listed.index(qcfg)}" if qcfg in listed else "quantization"
        if getattr(qcfg, "preset", None) == "auto":  # built, and keyed, as this CPU's preset
            qcfg = qcfg.model_copy(update={"preset": isa_preset()})
        key = fingerprint(
            "quantize", quantize_stage.STAGE_VERSION, qcfg, self.keys[source], ctx.max_length, ctx.seed
        )
        inputs = quantize_stage.QuantInputs(
            self.variants[source], source, variant, where, self.model_dirs.get(source)
        )
        result = self.stage(f"models/{variant}", key, lambda tmp: quantize_stage.run(qcfg, inputs, ctx, tmp))
        self.keys[variant] = key
        self.variants[variant] = result.path
        return result.path

    def benchmark(self) -> StageResult:
        from edgecompress.benchmark import stage as benchmark_stage

        ctx, r = self.context, self.recipe
        variant_keys = {name: self.keys[name] for name in self.variants}
        key = fingerprint(
            "benchmark",
            benchmark_stage.STAGE_VERSION,
            r.benchmark,
            r.sequence_length,
            ctx.max_length,
            variant_keys,
            self.keys["data"],
        )
        inputs = benchmark_stage.BenchmarkInputs(dict(self.variants), r.sequence_length)
        return self.stage("benchmark", key, lambda tmp: benchmark_stage.run(r.benchmark, inputs, ctx, tmp))

    def mobile(self) -> dict[str, dict]:
        """The variants named in ``mobile.variants`` as .ort files (mobile/<variant>/), with their checks."""
        from edgecompress.errors import RecipeError
        from edgecompress.mobile import stage as mobile_stage

        cfg, ctx, records = self.recipe.mobile, self.context, {}
        for i, variant in enumerate(cfg.variants):
            if variant not in self.variants:
                known = ", ".join(self.variants)
                raise RecipeError(
                    f"no variant '{variant}' in this run (known: {known})", where=f"mobile.variants.{i}"
                )
            key = fingerprint("mobile", mobile_stage.STAGE_VERSION, cfg, self.keys[variant], ctx.max_length)
            inputs = mobile_stage.MobileInputs(self.variants[variant])
            records[variant] = self.stage(
                f"mobile/{variant}", key, lambda tmp, i=inputs: mobile_stage.run(cfg, i, ctx, tmp)
            ).record
        return records

    def report(self, benchmark: StageResult, mobile: dict[str, dict] | None = None) -> RunSummary:
        from edgecompress.report import stage as report_stage

        stages = [
            {
                "name": s.name,
                "reused": s.reused,
                "seconds": s.seconds,
                "train_precision": s.record.get("train_precision"),
            }
            for s in self.folder.results
        ]
        pruned = self.results.get("pruned") if self.recipe.prune else None
        inputs = report_stage.ReportInputs(
            benchmark.path,
            TEACHER_VARIANT,
            stages,
            prune=pruned.record if pruned else None,
            prune_dir=pruned.path if pruned else None,
            mobile=mobile or {},
            data=self.results["data"].record if "data" in self.results else None,
        )
        out = report_stage.run(self.recipe.report, inputs, self.context, self.run_dir)
        self.log(f"[report] {self.run_dir / 'report.md'}")
        return RunSummary(self.run_dir, out["rows"], out["table"], self.folder.results)

    def run(self) -> RunSummary | None:
        self.preflight()
        models = {"teacher": self.teacher(), "student": self.student()}
        if self.recipe.prune:
            models["pruned"] = self.pruned()
        self.close()  # training is over: only the main process exports, measures and reports
        if not self.main:
            return None
        self.export(TEACHER_VARIANT, models["teacher"])
        for source in self.recipe.model_sources():
            self.export(f"{source}-fp32", models[source])
            for qcfg in self.recipe.quantization.variants:
                if source in qcfg.apply_to:
                    self.quantize(f"{source}-fp32", qcfg)
        mobile = self.mobile()  # .ort conversions of the chosen variants
        return self.report(self.benchmark(), mobile)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Let another run use the run folder."""
        self.folder.release()

    def close(self, wait: bool = True) -> None:
        """End the distributed part: leave the process group (a gloo process exiting without it aborts).

        Later stages run on the main process alone, without synchronising. ``wait=False`` after a failure:
        the other processes may never reach the barrier.
        """
        if self.distributed:
            if wait:
                self.accelerator.wait_for_everyone()
            self.accelerator.end_training()
            self.distributed = False


def run_recipe(
    recipe: Recipe, output: str | Path | None = None, force: bool = False, log=log_to_stderr
) -> RunSummary | None:
    """Run (or resume) every stage of ``recipe``. Returns None on non-main processes of a distributed run."""
    with Pipeline(recipe, output, force, log) as pipeline:
        try:
            return pipeline.run()
        except BaseException:
            pipeline.close(wait=False)
            raise
