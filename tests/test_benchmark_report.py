"""Latency statistics, interleaving, machine facts and the report's rows and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import stage_context

from edgecompress.benchmark.latency import summarize, time_interleaved
from edgecompress.machine import isa_preset, machine_info, machine_line
from edgecompress.report.tables import build_rows, markdown_table
from edgecompress.training.metrics import classification_metrics


def test_summarize_percentiles_and_throughput():
    s = summarize([i / 1000 for i in range(1, 101)], batch_size=8)  # 1..100 ms
    assert s["runs"] == 100
    assert (
        s["p50_ms"] == pytest.approx(50.5)
        and s["p90_ms"] == pytest.approx(90.1)
        and s["p99_ms"] == pytest.approx(99.01)
    )
    assert s["throughput_per_s"] == pytest.approx(8 / 0.0505)


def test_interleaving_rotates_the_order():
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def run(self, _outputs, _feed):
            calls.append(self.name)

    times = time_interleaved({"a": Fake("a"), "b": Fake("b")}, {"a": {}, "b": {}}, runs=4, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_metrics():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2)
    assert m["accuracy"] == 0.75
    # F1(0) = 2/3, F1(1) = 0.8
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2)


def _cpuinfo() -> tuple[str, set[str], int]:
    """Model name, flags and processor count, read from /proc/cpuinfo here (not through edgecompress.machine)."""
    model, flags, processors = "", set(), 0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags |= set(value.split())
        elif key == "processor":
            processors += 1
    return model, flags, processors


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads this CPU's facts from /proc/cpuinfo")
def test_machine_line_names_cpu_isa_and_versions():
    """This machine's own facts, read independently: CPU model, ISA flags, core count, the preset the documented
    rule picks (VNNI, else AVX-512, else AVX2; ARM is arm64) and the versions of the imported libraries."""
    import platform

    import numpy
    import onnxruntime
    import torch

    from edgecompress.machine import ISA_FLAGS

    model, flags, processors = _cpuinfo()
    info = machine_info()
    assert info["cpu"] == (model or platform.processor() or platform.machine())
    assert info["isa"] == [f for f in ISA_FLAGS if f in flags] and info["arch"] == platform.machine()
    assert info["cores"] == processors
    versions = {
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
    assert {k: info["libraries"][k] for k in versions} == versions
    line = machine_line(info)
    assert line.startswith(f"{info['cpu']} ({info['arch']}; {' '.join(info['isa'])}), {processors} cores; ")
    assert f"onnxruntime {onnxruntime.__version__}" in line
    if platform.machine().lower() in ("aarch64", "arm64"):
        expected = "arm64"
    else:
        expected = "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"
    assert isa_preset() == expected


def _bench():
    variants = {
        "teacher-fp32": {
            "artifact": "t",
            "precision": "fp32",
            "size_mb": 90.0,
            "params": 22_000_000,
            "accuracy": 0.80,
            "f1_macro": 0.79,
            "validation_accuracy": 0.81,
        },
        "student-int8": {
            "artifact": "s",
            "precision": "int8",
            "size_mb": 15.0,
            "params": 15_000_000,
            "accuracy": 0.79,
            "f1_macro": 0.78,
            "validation_accuracy": 0.805,
        },
    }
    latency = []
    for name, base in (("teacher-fp32", 12.0), ("student-int8", 3.0)):
        for b, t, scale in ((1, 1, 1.0), (1, 2, 0.6), (8, 1, 7.0)):
            latency.append(
                {
                    "variant": name,
                    "batch_size": b,
                    "threads": t,
                    "sequence_length": 64,
                    "p50_ms": base * scale,
                    "p90_ms": base * scale * 1.1,
                    "p99_ms": base * scale * 1.2,
                    "throughput_per_s": b / (base * scale / 1e3),
                }
            )
    return {"variants": variants, "latency": latency}


def test_rows_have_the_documented_keys_and_ratios():
    rows = build_rows(_bench(), "teacher-fp32")
    student = rows[1]
    for key in ("variant", "artifact", "size_mb", "params", "accuracy", "f1_macro", "latency_ms_p50"):
        assert key in student
    assert student["latency_ms_p50"] == 3.0  # batch 1, 1 thread
    assert student["x_smaller"] == pytest.approx(6.0) and student["x_faster"] == pytest.approx(4.0)
    assert student["accuracy_delta_pts"] == pytest.approx(-1.0)
    assert student["latency_ms_p50_b8_t1"] == pytest.approx(21.0)
    table = markdown_table(rows, "teacher-fp32")
    assert "| student-int8 | 15.0 | 6.0 |" in table and "-1.00" in table
    json.dumps(rows)


def test_report_shows_checks_autotune_and_mobile(tmp_path):
    """report.md gains the accuracy checks (guard, INC -> ONNX agreement, autotune trials) and the mobile
    profile; a variant over its budget is marked and never named fastest or smallest."""
    from edgecompress.report import stage as report_stage
    from edgecompress.report.config import ReportConfig

    bench = _bench()
    bench["machine"] = machine_info()
    bench["variants"]["student-int8"]["accuracy_guard"] = {
        "max_accuracy_drop": 1.0,
        "fp32_validation_accuracy": 0.8,
        "first_validation_accuracy": 0.7,
        "validation_accuracy": 0.75,
        "drop_pts": 5.0,
        "within_tolerance": False,
        "excluded_groups": ["classifier"],
        "excluded_nodes": ["/classifier/Gemm"],
        "sensitivity": {"classifier": 0.01, "layer.0": 0.5},
        "steps": [],
    }
    bench["variants"]["student-int4"] = {
        **bench["variants"]["student-int8"],
        "accuracy_guard": None,
        "artifact": "i",
        "precision": "int4",
        "size_mb": 9.0,
        "inc_vs_onnx": {"samples": 100, "argmax_agreement": 1.0, "max_abs_logit_diff": 1e-3},
        "autotune": {
            "baseline_accuracy": 0.8,
            "tolerable_loss": 0.01,
            "goal_accuracy": 0.792,
            "chosen": 2,
            "met_goal": True,
            "trials": [
                {
                    "trial": 1,
                    "algorithm": "rtn",
                    "group_size": 128,
                    "keep_fp32": [],
                    "accuracy": 0.7,
                    "relative_loss": 0.125,
                    "meets_goal": False,
                },
                {
                    "trial": 2,
                    "algorithm": "gptq",
                    "group_size": 128,
                    "keep_fp32": [],
                    "accuracy": 0.795,
                    "relative_loss": 0.00625,
                    "meets_goal": True,
                },
            ],
        },
    }
    bench["latency"] += [
        {**r, "variant": "student-int4", "p50_ms": 2 * r["p50_ms"]} for r in bench["latency"][3:]
    ]
    bench["mobile"] = {
        "short_length": 16,
        "typical_length": 30,
        "latency": [
            {"variant": v, "batch_size": 1, "threads": 1, "sequence_length": n, "p50_ms": 1.0}
            for v in bench["variants"]
            for n in (16, 30)
        ],
        "memory": {v: {"baseline_mb": 40.0, "peak_mb": 60.0, "model_mb": 20.0} for v in bench["variants"]},
    }
    ort = {
        "ort_size_mb": 9.1,
        "loads_and_runs": True,
        "vs_onnx": {"argmax_agreement": 1.0},
        "peak_rss": {"peak_mb": 55.0},
        "usability": {"execution_providers": {"NNAPI": {"as_is": "NO"}}},
    }
    (tmp_path / "bench").mkdir()
    for v in bench["variants"].values():
        v["artifact"] = str(tmp_path / v["artifact"])
    for name in ("t", "s", "i"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    (tmp_path / "bench" / "benchmark.json").write_text(json.dumps(bench))
    out = report_stage.run(
        ReportConfig(plots=False),
        report_stage.ReportInputs(tmp_path / "bench", "teacher-fp32", [], mobile={"student-int4": ort}),
        stage_context(None, recipe={"name": "r"}),
        tmp_path,
    )
    md = (tmp_path / "report.md").read_text()
    assert "over tolerance (5.00 > 1 pts)" in md and "## Accuracy checks" in md
    assert "Fastest at batch 1, 1 thread: `student-int4`" in md and "never picked above: `student-int8`" in md
    assert "| 2 (chosen) | gptq | 128 | - | 0.7950 |" in md
    assert "argmax agreement 1.0000, max |delta logit| 1.00e-03" in md
    assert (
        "## Mobile-class profile" in md
        and "| student-int4 | 1.00 | 1.00 | 60.0 | 20.0 | 9.1 | yes | 55.0 | NNAPI: NO |" in md
    )
    rows = {r["variant"]: r for r in out["rows"]}
    assert rows["student-int8"]["flagged"] and not rows["student-int4"]["flagged"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert (
        report["best"]["smallest"] == "student-int4"
        and report["mobile"]["ort"]["student-int4"]["ort_size_mb"] == 9.1
    )
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["metrics"]["check"].startswith("over")
