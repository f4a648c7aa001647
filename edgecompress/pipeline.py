"""The main job: recipe in, deployable ONNX variants and a size/latency/accuracy report out.

data -> teacher (fine-tune) -> student (distill) -> export (fp32 ONNX) -> quantize -> benchmark -> report.
Each stage lives in its own folder under the run folder, keyed by a hash of its config and inputs.
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


def run_recipe(recipe: Recipe, output: str | Path | None = None, force: bool = False, log=_stderr) -> RunSummary | None:
    """Run (or resume) every stage of ``recipe``. Returns None on non-main processes of a distributed run."""
    from edgecompress.quiet import quiet_third_party

    quiet_third_party()
    from edgecompress.benchmark import stage as benchmark_stage
    from edgecompress.data import stage as data_stage
    from edgecompress.data.examples import PreparedData
    from edgecompress.distill import stage as distill_stage
    from edgecompress.export import stage as export_stage
    from edgecompress.export.artifact import read_manifest, write_manifest
    from edgecompress.quantize import QuantContext, quantize
    from edgecompress.report import stage as report_stage
    from edgecompress.teacher import stage as teacher_stage
    from edgecompress.training.accel import make_accelerator

    accelerator = make_accelerator(recipe.device, recipe.mixed_precision, recipe.seed)
    main = accelerator.is_main_process
    run_dir = Path(output) if output else recipe.run_dir
    folder = RunFolder(run_dir, force=force, is_main_process=main)
    say = log if main else (lambda _msg: None)
    sync = accelerator.wait_for_everyone
    recipe_dict = recipe.model_dump(mode="json")
    if main:
        (run_dir / "recipe.yaml").write_text(dump_recipe(recipe))
    seed, max_len = recipe.seed, recipe.data.max_length

    def stage(name: str, key: str, build) -> StageResult:
        done = folder.finished(name, key) is not None
        say(f"[{name}] {'reused (finished earlier)' if done else 'running'}")
        result = folder.stage(name, key, build, sync=sync)
        if not result.reused:
            say(f"[{name}] done in {result.seconds:.1f} s")
        return result

    def build_data(tmp: Path) -> dict:
        data = data_stage.prepare(recipe.data, seed)
        if main:
            data.save(tmp)
        return data.stats()

    k_data = fingerprint("data", data_stage.STAGE_VERSION, recipe.data, seed)
    data_dir = stage("data", k_data, build_data).path
    data = PreparedData.load(data_dir)

    k_teacher = fingerprint("teacher", teacher_stage.STAGE_VERSION, recipe.teacher, k_data, seed, max_len)
    teacher_dir = stage(
        "teacher", k_teacher, lambda tmp: teacher_stage.run(recipe.teacher, data, tmp, accelerator, seed, max_len)
    ).path

    k_student = fingerprint("student", distill_stage.STAGE_VERSION, recipe.student, recipe.distill, k_teacher, seed, max_len)
    student_dir = stage(
        "student",
        k_student,
        lambda tmp: distill_stage.run(recipe.student, recipe.distill, data, teacher_dir, tmp, accelerator, seed, max_len),
    ).path
    if not main:
        return None

    variants: dict[str, Path] = {}
    keys: dict[str, str] = {}
    for base, model_dir, k_model in (("teacher", teacher_dir, k_teacher), ("student", student_dir, k_student)):
        name = f"{base}-fp32"
        keys[name] = fingerprint("export", export_stage.STAGE_VERSION, recipe.export, k_model, max_len)
        variants[name] = stage(
            f"models/{name}",
            keys[name],
            lambda tmp, model_dir=model_dir, name=name: export_stage.run(
                recipe.export, model_dir, data, tmp, name, recipe_dict, max_len
            ),
        ).path

    for qcfg in recipe.quantization.variants:
        source = "student-fp32"
        name = f"student-{qcfg.name}"
        keys[name] = fingerprint("quantize", 1, qcfg, keys[source], max_len, seed)

        def build_quant(tmp: Path, qcfg=qcfg, source=source, name=name) -> dict:
            scratch = run_dir / f".scratch-{name}"
            try:
                info = quantize(qcfg, variants[source], tmp, QuantContext(data, max_len, seed, scratch))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            src = read_manifest(variants[source])
            info = {**info, "params": src["params"], "source_variant": source, "labels": data.labels}
            write_manifest(tmp, name, recipe_dict, info)
            return info

        variants[name] = stage(f"models/{name}", keys[name], build_quant).path

    seq_len = recipe.sequence_length
    k_bench = fingerprint("benchmark", benchmark_stage.STAGE_VERSION, recipe.benchmark, seq_len, max_len, keys, k_data)
    bench_dir = stage(
        "benchmark",
        k_bench,
        lambda tmp: benchmark_stage.run(recipe.benchmark, variants, data, max_len, seq_len, tmp, log=say),
    ).path

    stages = [{"name": r.name, "reused": r.reused, "seconds": r.seconds} for r in folder.results]
    out = report_stage.run(recipe.report, bench_dir, run_dir, TEACHER_VARIANT, recipe_dict, stages)
    say(f"[report] {run_dir / 'report.md'}")
    return RunSummary(run_dir, out["rows"], out["table"], folder.results)
