"""Scale-out: the unchanged CLI under ``accelerate launch`` with 2 CPU processes (torch DDP over gloo).

Checks that both ranks train on their shard, that only rank 0 writes into the run folder, and that the
models are as good as a single-process run of the same recipe.

On CPU, ``accelerate launch --multi_gpu`` is the launcher that starts several local processes (through
torchrun); the Accelerator then finds no GPU and sets up MULTI_CPU with the gloo backend. ``--cpu`` with
``--num_processes 2`` would start only one process (it expects mpirun for multi-CPU). torchrun sets
OMP_NUM_THREADS=1 per process; ``--main_process_port 0`` picks a free port for the rendezvous.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_recipe

from edgecompress.recipe import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
TRAINING = {"max_steps": 40, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1}


def _recipe(tiny_teacher, tiny_csv, out: Path) -> dict:
    return tiny_recipe(
        tiny_teacher,
        tiny_csv,
        out,
        teacher={"model": str(tiny_teacher), "training": TRAINING},
        distill={"training": TRAINING},
        quantization={"variants": [{"method": "int8_dynamic", "name": "int8-dynamic"}]},
        benchmark={"batch_sizes": [1], "threads": [1], "runs": 2, "warmup": 0},
        report={"plots": False},
    )


def _record(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "stage.json").read_text())["record"]


@pytest.fixture(scope="module")
def two_process_run(tiny_teacher, tiny_csv, tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    run, audit = base / "run", base / "audit"
    audit.mkdir()
    recipe_file = base / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(_recipe(tiny_teacher, tiny_csv, run)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",  # one thread per process: 2 processes on 2 cores, no oversubscription
        "EC_AUDIT_ROOT": str(run),
        "EC_AUDIT_LOG": str(audit),
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        str(ROOT / "tests" / "distributed_entry.py"),
        "run",
        str(recipe_file),
    ]
    proc = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    logs = {int(p.stem.removeprefix("rank")): json.loads(p.read_text()) for p in audit.glob("rank*.json")}
    return run, proc.stdout, logs


def test_both_ranks_train_on_their_shard(two_process_run):
    run, _, logs = two_process_run
    assert sorted(logs) == [0, 1]  # both processes ran to a clean exit
    for stage in ("teacher", "student"):
        record = _record(run, stage)
        assert record["processes"] == 2
        per_rank = record["examples_per_process"]
        # 40 steps of (up to) 16 examples on each rank: each rank draws its own batches of the shared order
        assert len(per_rank) == 2 and all(0.8 * 40 * 16 <= n <= 40 * 16 for n in per_rank), per_rank


def test_only_rank_0_writes(two_process_run):
    run, stdout, logs = two_process_run
    assert logs[1]["changes"] == [], logs[1]["changes"][:10]
    opened = [Path(c[1]) for c in logs[0]["changes"] if c[0] == "open"]
    written = {p.relative_to(run).parts[0] for p in opened if p != run}  # the folder itself: its lock
    assert {"recipe.yaml", "report.json"} <= written  # the hook does see rank 0's writes
    for name in ("teacher-fp32", "student-fp32", "student-int8-dynamic"):
        assert (run / "models" / name / "model.onnx").is_file()
    assert (run / "report.md").is_file() and not list(run.glob(".*partial"))
    assert stdout.count("| student-int8-dynamic |") == 1  # one report table, printed by rank 0 only


def test_as_good_as_a_single_process_run(two_process_run, tiny_teacher, tiny_csv, tmp_path, one_thread):
    """One thread, like each process of the 2-process run (conftest.one_thread)."""
    from edgecompress.pipeline import Pipeline

    run, _, _ = two_process_run
    single = Pipeline(
        recipe_from_dict(_recipe(tiny_teacher, tiny_csv, tmp_path / "single")), log=lambda _m: None
    )
    single.student()  # the training stages only: data, teacher, student
    for stage in ("teacher", "student"):
        one = _record(tmp_path / "single", stage)
        two = _record(run, stage)
        assert one["processes"] == 1 and len(one["examples_per_process"]) == 1
        assert two["validation"]["accuracy"] >= one["validation"]["accuracy"] - 0.03, (stage, one, two)
        assert two["validation"]["accuracy"] > 0.9
