"""The report names its fastest and smallest variants by one rule for every variant: not flagged by its own
quantizer check, and validation accuracy at most report.max_accuracy_drop points below the teacher's. A
variant without any quantizer check is held to the same rule, and test figures never decide."""

from __future__ import annotations

import json

import pytest
from conftest import export_model, make_tiny_bert, stage_context, synthetic_rows, write_csv

from edgecompress.report.tables import build_rows, markdown_table, pick_best


def _bench(variants: dict[str, dict]) -> dict:
    """A benchmark record from ``{name: {size_mb, ms, accuracy, validation_accuracy, ...}}``."""
    out = {"variants": {}, "latency": []}
    for name, v in variants.items():
        v = dict(v)
        ms = v.pop("ms")
        out["variants"][name] = {
            "artifact": name,
            "precision": "int8",
            "params": 100,
            "f1_macro": v["accuracy"],
            "validation_f1_macro": v["validation_accuracy"],
            **v,
        }
        out["latency"].append(
            {
                "variant": name,
                "batch_size": 1,
                "threads": 1,
                "sequence_length": 16,
                "p50_ms": ms,
                "p90_ms": ms,
                "p99_ms": ms,
                "throughput_per_s": 1000 / ms,
            }
        )
    return out


TEACHER = {"size_mb": 90.0, "ms": 10.0, "accuracy": 0.90, "validation_accuracy": 0.90}


def test_an_unchecked_variant_ten_points_down_is_never_fastest_or_smallest():
    bench = _bench(
        {
            "teacher-fp32": TEACHER,
            # no quantizer check at all, fastest and smallest, 10 validation points below the teacher
            "student-fp32": {"size_mb": 1.0, "ms": 1.0, "accuracy": 0.80, "validation_accuracy": 0.80},
            "student-int8": {"size_mb": 5.0, "ms": 3.0, "accuracy": 0.89, "validation_accuracy": 0.895},
        }
    )
    rows = build_rows(bench, "teacher-fp32")
    best = pick_best(rows, "teacher-fp32")  # report.max_accuracy_drop's default: 1 point
    assert best["fastest"] == best["smallest"] == "student-int8"
    assert list(best["excluded"]) == ["student-fp32"]
    assert "10.00 pts below teacher-fp32" in best["excluded"]["student-fp32"]
    assert "validation accuracy at most 1 points below teacher-fp32's (0.9000)" in best["rule"]
    # a looser budget admits it: the same rule, another number
    assert pick_best(rows, "teacher-fp32", max_accuracy_drop=10.0)["fastest"] == "student-fp32"
    header, _, *lines = markdown_table(rows, "teacher-fp32").splitlines()
    column = [c.strip() for c in header.split("|")].index("validation accuracy")
    assert [line.split("|")[column].strip() for line in lines[:3]] == ["0.9000", "0.8000", "0.8950"]


def test_test_figures_never_decide():
    bench = _bench(
        {
            "teacher-fp32": TEACHER,
            # best on test, 5 points down on validation: out
            "a-fp32": {"size_mb": 1.0, "ms": 1.0, "accuracy": 0.99, "validation_accuracy": 0.85},
            # 20 points down on test, level on validation: in
            "b-int8": {"size_mb": 2.0, "ms": 2.0, "accuracy": 0.70, "validation_accuracy": 0.90},
        }
    )
    best = pick_best(build_rows(bench, "teacher-fp32"), "teacher-fp32")
    assert best["fastest"] == best["smallest"] == "b-int8" and list(best["excluded"]) == ["a-fp32"]


def test_a_variant_flagged_by_its_check_or_unmeasured_is_excluded_with_its_reason():
    bench = _bench(
        {
            "teacher-fp32": TEACHER,
            "a-int8": {
                "size_mb": 1.0,
                "ms": 1.0,
                "accuracy": 0.9,
                "validation_accuracy": 0.9,
                "autotune": {"trials": [], "chosen": 1, "met_goal": False},
            },
            "b-int8": {"size_mb": 2.0, "ms": 2.0, "accuracy": 0.9, "validation_accuracy": None},
        }
    )
    best = pick_best(build_rows(bench, "teacher-fp32"), "teacher-fp32")
    assert "fastest" not in best and "smallest" not in best
    assert best["excluded"] == {
        "a-int8": "its own check: autotune goal missed",
        "b-int8": "no validation accuracy measured for b-int8",
    }


def test_report_states_the_rule_and_what_it_excluded(tmp_path):
    from edgecompress.machine import machine_info
    from edgecompress.report import stage as report_stage
    from edgecompress.report.config import ReportConfig

    bench = _bench(
        {
            "teacher-fp32": TEACHER,
            "student-fp32": {"size_mb": 1.0, "ms": 1.0, "accuracy": 0.80, "validation_accuracy": 0.80},
            "student-int8": {"size_mb": 5.0, "ms": 3.0, "accuracy": 0.89, "validation_accuracy": 0.895},
        }
    )
    bench["machine"] = machine_info()
    for v in bench["variants"].values():
        (tmp_path / v["artifact"]).mkdir()
        (tmp_path / v["artifact"] / "manifest.json").write_text("{}")
        v["artifact"] = str(tmp_path / v["artifact"])
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "benchmark.json").write_text(json.dumps(bench))
    report_stage.run(
        ReportConfig(plots=False, max_accuracy_drop=2.0),
        report_stage.ReportInputs(tmp_path / "bench", "teacher-fp32", []),
        stage_context(None, recipe={"name": "r"}),
        tmp_path,
    )
    md = (tmp_path / "report.md").read_text()
    assert "Fastest at batch 1, 1 thread: `student-int8`; smallest: `student-int8`." in md
    assert "validation accuracy at most 2 points below teacher-fp32's (0.9000)" in md
    assert "never picked above: `student-fp32` (validation accuracy 0.8000, 10.00 pts below" in md
    best = json.loads((tmp_path / "report.json").read_text())["best"]
    assert best["fastest"] == "student-int8" and best["max_accuracy_drop"] == 2.0
    assert list(best["excluded"]) == ["student-fp32"] and best["rule"] in md
    row = next(
        r
        for r in json.loads((tmp_path / "report.json").read_text())["rows"]
        if r["variant"] == "student-fp32"
    )
    assert row["validation_accuracy"] == 0.80
    manifest = json.loads((tmp_path / "student-fp32" / "manifest.json").read_text())
    assert manifest["metrics"]["validation_accuracy"] == 0.80


def test_benchmark_measures_validation_accuracy_from_onnx_runtime(tmp_path):
    """The benchmark stage scores each variant on the validation split too (ONNX Runtime outputs)."""
    import numpy as np
    from transformers import AutoTokenizer

    from edgecompress.benchmark import stage as benchmark_stage
    from edgecompress.benchmark.config import BenchmarkConfig
    from edgecompress.data.config import DataConfig
    from edgecompress.data.stage import prepare
    from edgecompress.export.config import ExportConfig
    from edgecompress.export.onnx import ort_logits, ort_session

    data = prepare(
        DataConfig(source="csv", path=str(write_csv(tmp_path / "d.csv", synthetic_rows(120))), max_length=16),
        0,
    )
    make_tiny_bert(tmp_path / "pt", labels=data.labels, layers=1, with_head=True)
    export_model(ExportConfig(parity_samples=4), tmp_path / "pt", data, tmp_path / "m-fp32", "m-fp32")
    (tmp_path / "bench").mkdir()
    benchmark_stage.run(
        BenchmarkConfig(batch_sizes=[1], threads=[1], runs=2, warmup=0),
        benchmark_stage.BenchmarkInputs({"m-fp32": tmp_path / "m-fp32"}, 16),
        stage_context(data),
        tmp_path / "bench",
    )
    result = json.loads((tmp_path / "bench" / "benchmark.json").read_text())["variants"]["m-fp32"]
    texts, _ = data.texts("validation")
    logits = ort_logits(
        ort_session(tmp_path / "m-fp32" / "model.onnx"),
        AutoTokenizer.from_pretrained(tmp_path / "m-fp32"),
        texts,
        16,
    )
    expected = float(np.mean(logits.argmax(-1) == np.asarray(data.label_ids("validation"))))
    assert result["validation_accuracy"] == pytest.approx(expected)
    assert result["validation_samples"] == len(texts) and 0 <= result["validation_f1_macro"] <= 1
    assert result["test_samples"] == len(data.texts("test")[0])
