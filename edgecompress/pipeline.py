"""The main job: recipe in, deployable ONNX variants and a size/latency/accuracy report out.

data -> teacher (fine-tune) -> student (distill) -> [pruned (prune + recover)] -> export (fp32 ONNX)
-> quantize -> benchmark -> report.
Each stage lives in its own folder under the run folder, keyed by a hash of its config and inputs, so a
finished stage is reused and a changed one re-runs with everything downstream of it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from edgecompress.config_base import fingerprint
from edgecompress.recipe import Recipe, dump_recipe
from edgecompress.runfolder import RunFolder, StageResult

TEACHER_VARIANT = "teacher-fp32"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class RunSummary:
    run_dir: Path
    rows: list[dict]
    table: str
    stages: list[StageResult]


class Pipeline:
    """The stages of one recipe over one run folder; each method runs (or reuses) one stage.

    ``run()`` chains them all; scripts (benchmarks/) call the pieces they need.
    """

    def __init__(self, recipe: Recipe, output: str | Path | None = None, force: bool = False, log=_stderr):
        from edgecompress.quiet import quiet_third_party
        from edgecompress.training.accel import make_accelerator

        quiet_third_party()
        self.recipe = recipe
        self.recipe_dict = recipe.model_dump(mode="json")
        self.accelerator = make_accelerator(recipe.device, recipe.mixed_precision, recipe.seed)
        self.main = self.accelerator.is_main_process
        self.distributed = self.accelerator.num_processes > 1  # stages synchronise the processes while True
        self.run_dir = Path(output) if output else recipe.run_dir
        self.folder = RunFolder(self.run_dir, force=force, is_main_process=self.main)
        self.log = log if self.main else (lambda _msg: None)
        self.keys: dict[str, str] = {}
        self.variants: dict[str, Path] = {}
        self._stages: dict[tuple[str, str], StageResult] = {}
        self._data = None
        if self.main:
            (self.run_dir / "recipe.yaml").write_text(dump_recipe(recipe))

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def max_length(self) -> int:
        return self.recipe.data.max_length

    def stage(self, name: str, key: str, build) -> StageResult:
        if (name, key) in self._stages:  # asked again in this run (student() needs teacher()): no re-run
            return self._stages[name, key]
        done = self.folder.finished(name, key) is not None
        self.log(f"[{name}] {'reused (finished earlier)' if done else 'running'}")
        result = self.folder.stage(name, key, build, sync=self._sync)
        if not result.reused:
            self.log(f"[{name}] done in {result.seconds:.1f} s")
        self._stages[name, key] = result
        return result

    def _sync(self) -> None:
        if self.distributed:
            self.accelerator.wait_for_everyone()

    def data(self):
        from edgecompress.data import stage as data_stage
        from edgecompress.data.examples import PreparedData

        if self._data is None:

            def build(tmp: Path) -> dict:
                data = data_stage.prepare(self.recipe.data, self.seed)
                if self.main:
                    data.save(tmp)
                return data.stats()

            self.keys["data"] = fingerprint("data", data_stage.STAGE_VERSION, self.recipe.data, self.seed)
            self._data = PreparedData.load(self.stage("data", self.keys["data"], build).path)
        return self._data

    def teacher(self) -> Path:
        from edgecompress.teacher import stage as teacher_stage

        data, r = self.data(), self.recipe
        self.keys["teacher"] = fingerprint(
            "teacher", teacher_stage.STAGE_VERSION, r.teacher, self.keys["data"], self.seed, self.max_length
        )
        return self.stage(
            "teacher",
            self.keys["teacher"],
            lambda tmp: teacher_stage.run(r.teacher, data, tmp, self.accelerator, self.seed, self.max_length),
        ).path

    def student(self, name: str = "student", distill_cfg=None) -> Path:
        """Distil the recipe's student (or, for ablations, the same student with another DistillConfig)."""
        from edgecompress.distill import stage as distill_stage

        teacher_dir, data, r = self.teacher(), self.data(), self.recipe
        cfg = distill_cfg or r.distill
        self.keys[name] = fingerprint(
            "student",
            distill_stage.STAGE_VERSION,
            r.student,
            cfg,
            self.keys["teacher"],
            self.seed,
            self.max_length,
        )
        return self.stage(
            name,
            self.keys[name],
            lambda tmp: distill_stage.run(
                r.student, cfg, data, teacher_dir, tmp, self.accelerator, self.seed, self.max_length
            ),
        ).path

    def preflight(self) -> None:
        """Checks that need only the models' shapes, before any training: impossible pruning targets."""
        r = self.recipe
        if r.prune is None:
            return
        from edgecompress.modeling.loading import load_config, resolve
        from edgecompress.prune.select import check_targets

        if r.student.model is not None:
            cfg = load_config(resolve(r.student.model, "student.model"))
        else:
            cfg = load_config(
                resolve(r.teacher.model, "teacher.model", r.teacher.revision, r.teacher.trust_remote_code)
            )
            cfg.num_hidden_layers = r.student.num_layers
            for field in ("num_attention_heads", "intermediate_size"):
                if getattr(r.student, field) is not None:
                    setattr(cfg, field, getattr(r.student, field))
        pruned = {int(k): len(v) for k, v in (getattr(cfg, "pruned_heads", None) or {}).items()}
        heads = [cfg.num_attention_heads - pruned.get(i, 0) for i in range(cfg.num_hidden_layers)]
        check_targets(r.prune, heads, [cfg.intermediate_size] * cfg.num_hidden_layers)

    def pruned(self) -> Path:
        """Prune the distilled student and recover; the folder also holds importance.json."""
        import json

        from edgecompress.prune import stage as prune_stage

        student_dir, teacher_dir, data, r = self.student(), self.teacher(), self.data(), self.recipe
        init_layers = json.loads((student_dir / "stage.json").read_text())["record"]["student"].get(
            "init_layers"
        )
        self.keys["pruned"] = fingerprint(
            "prune",
            prune_stage.STAGE_VERSION,
            r.prune,
            r.distill,
            self.keys["student"],
            self.keys["teacher"],
            self.seed,
            self.max_length,
        )
        return self.stage(
            "pruned",
            self.keys["pruned"],
            lambda tmp: prune_stage.run(
                r.prune,
                r.distill,
                student_dir,
                teacher_dir,
                data,
                tmp,
                self.accelerator,
                self.seed,
                self.max_length,
                init_layers,
            ),
        ).path

    def export(self, variant: str, model_dir: Path, model_key: str) -> Path:
        from edgecompress.export import stage as export_stage

        data = self.data()
        self.keys[variant] = fingerprint(
            "export", export_stage.STAGE_VERSION, self.recipe.export, model_key, self.max_length
        )
        self.variants[variant] = self.stage(
            f"models/{variant}",
            self.keys[variant],
            lambda tmp: export_stage.run(
                self.recipe.export, model_dir, data, tmp, variant, self.recipe_dict, self.max_length
            ),
        ).path
        return self.variants[variant]

    def quantize(self, source: str, qcfg) -> Path:
        from edgecompress.export.artifact import read_manifest, write_manifest
        from edgecompress.quantize import QuantContext, quantize

        data = self.data()
        base = source.removesuffix("-fp32")
        variant = f"{base}-{qcfg.name}"
        listed = self.recipe.quantization.variants
        where = f"quantization.variants.{listed.index(qcfg)}" if qcfg in listed else "quantization"
        self.keys[variant] = fingerprint("quantize", 1, qcfg, self.keys[source], self.max_length, self.seed)

        def build(tmp: Path) -> dict:
            scratch = self.run_dir / f".scratch-{variant}"
            try:
                info = quantize(
                    qcfg,
                    self.variants[source],
                    tmp,
                    QuantContext(data, self.max_length, self.seed, scratch, where),
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            src = read_manifest(self.variants[source])
            info = {**info, "params": src["params"], "source_variant": source, "labels": data.labels}
            write_manifest(tmp, variant, self.recipe_dict, info)
            return info

        self.variants[variant] = self.stage(f"models/{variant}", self.keys[variant], build).path
        return self.variants[variant]

    def benchmark(self) -> Path:
        from edgecompress.benchmark import stage as benchmark_stage

        r, data = self.recipe, self.data()
        seq_len = r.sequence_length
        variant_keys = {name: self.keys[name] for name in self.variants}
        key = fingerprint(
            "benchmark",
            benchmark_stage.STAGE_VERSION,
            r.benchmark,
            seq_len,
            self.max_length,
            variant_keys,
            self.keys["data"],
        )
        return self.stage(
            "benchmark",
            key,
            lambda tmp: benchmark_stage.run(
                r.benchmark, self.variants, data, self.max_length, seq_len, tmp, log=self.log
            ),
        ).path

    def mobile(self) -> dict[str, dict]:
        """The variants named in ``mobile.variants`` as .ort files (mobile/<variant>/), with their checks."""
        from edgecompress.errors import RecipeError
        from edgecompress.mobile import stage as mobile_stage

        cfg, data, records = self.recipe.mobile, self.data(), {}
        for i, variant in enumerate(cfg.variants):
            if variant not in self.variants:
                known = ", ".join(self.variants)
                raise RecipeError(
                    f"no variant '{variant}' in this run (known: {known})", where=f"mobile.variants.{i}"
                )
            key = fingerprint("mobile", mobile_stage.STAGE_VERSION, cfg, self.keys[variant], self.max_length)
            records[variant] = self.stage(
                f"mobile/{variant}",
                key,
                lambda tmp, v=variant: mobile_stage.run(cfg, self.variants[v], tmp, data, self.max_length),
            ).record
        return records

    def report(self, bench_dir: Path, mobile: dict[str, dict] | None = None) -> RunSummary:
        from edgecompress.report import stage as report_stage

        stages = [{"name": s.name, "reused": s.reused, "seconds": s.seconds} for s in self.folder.results]
        prune_dir = self.run_dir / "pruned" if self.recipe.prune else None
        out = report_stage.run(
            self.recipe.report,
            bench_dir,
            self.run_dir,
            TEACHER_VARIANT,
            self.recipe_dict,
            stages,
            prune_dir,
            mobile,
        )
        self.log(f"[report] {self.run_dir / 'report.md'}")
        return RunSummary(self.run_dir, out["rows"], out["table"], self.folder.results)

    def run(self) -> RunSummary | None:
        self.preflight()
        teacher_dir = self.teacher()
        student_dir = self.student()
        pruned_dir = self.pruned() if self.recipe.prune else None
        self.close()  # training is over: only the main process exports, measures and reports
        if not self.main:
            return None
        self.export(TEACHER_VARIANT, teacher_dir, self.keys["teacher"])
        model_dirs = {"student": student_dir, "pruned": pruned_dir}
        for source in self.recipe.model_sources():
            self.export(f"{source}-fp32", model_dirs[source], self.keys[source])
            for qcfg in self.recipe.quantization.variants:
                if source in qcfg.apply_to:
                    self.quantize(f"{source}-fp32", qcfg)
        mobile = self.mobile()  # .ort conversions of the chosen variants
        return self.report(self.benchmark(), mobile)

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
    recipe: Recipe, output: str | Path | None = None, force: bool = False, log=_stderr
) -> RunSummary | None:
    """Run (or resume) every stage of ``recipe``. Returns None on non-main processes of a distributed run."""
    pipeline = Pipeline(recipe, output, force, log)
    try:
        return pipeline.run()
    except BaseException:
        pipeline.close(wait=False)
        raise
