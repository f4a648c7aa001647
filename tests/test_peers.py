"""Peer comparison and roofline scripts: the choice of our artifact, the ratios, and both scripts end to end
on a tiny finished run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import load_script, tiny_recipe

from edgecompress.errors import EdgeCompressError
from edgecompress.studies import peers as P


def _row(variant, validation, latency, size, test=None):
    """A report row; its test accuracy (default: the validation one) must never change the pick."""
    accuracy = validation if test is None else test
    return {
        "variant": variant,
        "validation_accuracy": validation,
        "accuracy": accuracy,
        "latency_ms_p50": latency,
        "size_mb": size,
    }


def test_pick_ours_fastest_within_the_validation_budget():
    report = {
        "baseline": "teacher-fp32",
        "rows": [
            _row("teacher-fp32", 0.84, 17.0, 91.0),
            _row("student-fp32", 0.84, 8.3, 69.6),
            _row("student-int8-dynamic", 0.828, 3.8, 17.6, test=0.70),  # poor on test: still picked at 2.0
            _row(
                "student-int8-static", 0.817, 3.7, 17.6, test=0.84
            ),  # fastest, but 2.3 validation points down
            _row("teacher-int8-dynamic", 0.83, 3.0, 23.0),  # derived from the teacher: never ours
        ],
    }
    assert P.pick_ours(report, 2.0)[0] == "student-int8-dynamic"
    assert P.pick_ours(report, 3.0)[0] == "student-int8-static"
    assert P.pick_ours(report, 0.5)[0] == "student-fp32"
    flagged = {**report, "rows": [*report["rows"][:2], {**report["rows"][2], "flagged": True, "check": "x"}]}
    assert P.pick_ours(flagged, 2.0)[0] == "student-fp32", "a variant its own check flagged is never ours"
    teacher = report["rows"][0]
    variant, why = P.pick_ours(
        {
            **report,
            "rows": [teacher, _row("s", 0.7, 1.0, 1.0, test=0.9), _row("t", 0.72, 2.0, 1.0, test=0.5)],
        },
        1.0,
    )
    assert variant == "t" and "most accurate one on validation" in why
    with pytest.raises(EdgeCompressError, match="no teacher-fp32 row"):
        P.pick_ours({"rows": [_row("student-fp32", 0.8, 1, 1)]}, 1.0)
    old = {
        **report,
        "rows": [{k: v for k, v in r.items() if k != "validation_accuracy"} for r in report["rows"]],
    }
    with pytest.raises(EdgeCompressError, match="no validation accuracy for teacher-fp32"):
        P.pick_ours(old, 1.0)


def test_stale_fields_compare_only_what_the_peers_share():
    built = {
        "seed": 1,
        "data": {"a": 1},
        "teacher": {},
        "student": {},
        "distill": {},
        "benchmark": {"runs": 9},
    }
    assert P.stale_fields(built, {**built, "benchmark": {"runs": 1}, "quantization": {}}) == []
    assert P.stale_fields(built, {**built, "seed": 2, "distill": {"x": 1}}) == ["seed", "distill"]


def _benchmark() -> dict:
    variants, latency = {}, []
    spec = {  # variant: size, accuracy, f1, b1 latency at 1 and 2 threads
        "teacher-int8-dynamic": (23.0, 0.83, 0.82, 8.0, 5.0),
        "ablation-labels-int8-dynamic": (17.6, 0.80, 0.79, 4.0, 2.5),
        "ablation-kd-int8-dynamic": (17.6, 0.82, 0.81, 4.0, 2.5),
        "pruned-int8-dynamic": (4.6, 0.835, 0.83, 1.6, 1.0),
    }
    for name, (size, acc, f1, t1, t2) in spec.items():
        variants[name] = {"precision": "int8", "size_mb": size, "accuracy": acc, "f1_macro": f1}
        variants[name]["test_samples"] = 1000
        for b, t, ms in ((1, 1, t1), (1, 2, t2), (8, 1, 8 * t1), (8, 2, 8 * t2 * 0.8)):
            latency.append(
                {
                    "variant": name,
                    "batch_size": b,
                    "threads": t,
                    "p50_ms": ms,
                    "p90_ms": 1.1 * ms,
                    "throughput_per_s": b / (ms / 1e3),
                }
            )
    return {"variants": variants, "latency": latency}


def test_peer_rows_ratios_against_the_one_liner():
    bench = _benchmark()
    peers = {label: (name, Path(name)) for label, name in zip("1234", bench["variants"], strict=True)}
    rows = P.peer_rows(bench, peers)
    ours = rows[3]
    assert ours["x_smaller"] == pytest.approx(23.0 / 4.6)
    assert ours["x_faster_p50_ms_b1_t1"] == pytest.approx(5.0)
    assert ours["x_faster_p90_ms_b1_t2"] == pytest.approx(5.0)
    assert ours["x_throughput_b8_t2"] == pytest.approx(5.0)
    assert ours["accuracy_delta_pts"] == pytest.approx(0.5) and ours["f1_delta_pts"] == pytest.approx(1.0)
    assert rows[0]["x_smaller"] == 1 and rows[0]["accuracy_delta_pts"] == 0
    tables = P.peer_tables(rows)
    assert "| (4) ours | `pruned-int8-dynamic` | int8 | 4.6 | 0.8350 | 0.8300 | 1.60 / 1.76 |" in tables
    assert "| (4) ours | 5.00 | 5.00 | 5.00 | 5.00 | 5.00 | 5.00 | 5.00 | +0.50 | +1.00 |" in tables
    check = "\n".join(P.target_check(rows))
    assert check.count(": met") == 3 and "NOT" not in check
    strict = "\n".join(P.target_check(rows, speed=6.0, size=4.0))
    assert "target 6x: NOT met" in strict and "target 4x: met" in strict


@pytest.fixture(scope="module")
def finished_tiny_run(tiny_teacher, tiny_csv, tmp_path_factory):
    import torch

    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import recipe_from_dict

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the suite shares 2 cores; one training thread is faster than two here
    base = tmp_path_factory.mktemp("peers")
    training = {"max_steps": 20, "batch_size": 16, "learning_rate": 5e-3, "evals_per_epoch": 1}
    recipe = tiny_recipe(
        tiny_teacher,
        tiny_csv,
        base / "run",
        teacher={"model": str(tiny_teacher), "training": training},
        distill={"training": training},
        quantization={"variants": [{"method": "int8_dynamic", "name": "int8-dynamic"}]},
        benchmark={"batch_sizes": [1, 2], "threads": [1, 0], "runs": 2, "warmup": 0},
        report={"plots": False},
    )
    (base / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    run_recipe(recipe_from_dict(recipe), log=lambda _m: None)
    yield base
    torch.set_num_threads(before)


def test_peers_and_roofline_scripts_end_to_end(finished_tiny_run, capsys):
    base = finished_tiny_run
    run = base / "run"
    # ours is named: the default rule picks by measured latency, which is noise between tiny models
    argv = [str(base / "recipe.yaml"), "--runs", "2", "--ours", "student-int8-dynamic"]
    assert load_script("peers").main(argv) == 0
    out = capsys.readouterr().out
    assert "| (1) teacher + Optimum dynamic int8 (one-liner) | `teacher-int8-dynamic` | int8 |" in out
    assert "| (4) ours | `student-int8-dynamic` |" in out and "Target for (4) against (1):" in out
    record = json.loads((run / "peers" / "peers.json").read_text())
    assert [r["variant"] for r in record["rows"]] == [
        "teacher-int8-dynamic",
        "ablation-labels-int8-dynamic",
        "ablation-kd-int8-dynamic",
        "student-int8-dynamic",
    ]
    assert record["machine"]["cpu"] and (run / "peers" / "peers.csv").is_file()
    for stage in ("ablation/labels", "ablation/kd"):  # the peers are cached stages of the run
        assert (
            json.loads((run / stage / "stage.json").read_text())["record"]["loss_weights"]["attention"] == 0
        )
    bench = json.loads((run / "peers" / "benchmark.json").read_text())
    assert {(r["batch_size"], r["runs"]) for r in bench["latency"]} == {(1, 2), (2, 2)}

    argv = [str(base / "recipe.yaml"), "--peak-size", "64", "--peak-runs", "2", "--profile-runs", "2"]
    assert load_script("roofline").main(argv) == 0
    out = capsys.readouterr().out
    assert "### Peak matrix-multiply throughput" in out and "| int8 | 1 |" in out
    assert "| `student-int8-dynamic` |" in out and "| other |" in out
    roof = json.loads((run / "roofline" / "roofline.json").read_text())
    ops = roof["ops"]["student-int8-dynamic@b2"]
    assert ops["total_ops"] == 2 * roof["ops"]["student-int8-dynamic@b1"]["total_ops"] > 0
    assert {(r["batch_size"], r["threads"]) for r in roof["achieved"]} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    peak = {(p["precision"], p["threads"]): p["peak_gops"] for p in roof["peaks"]}
    measured = {(r["variant"], r["batch_size"], r["threads"]): r["p50_ms"] for r in bench["latency"]}
    for r in roof["achieved"]:  # each row from its own counts, latency and the peaks at its thread count
        assert r["latency_ms"] == measured[r["variant"], r["batch_size"], r["threads"]]
        ideal_s = r["fp32_ops"] / (peak["fp32", r["threads"]] * 1e9) + r["int8_ops"] / (
            peak["int8", r["threads"]] * 1e9
        )
        assert r["of_peak"] == pytest.approx(1e3 * ideal_s / r["latency_ms"], rel=1e-9)
        assert r["gops"] == pytest.approx(r["total_ops"] / (r["latency_ms"] / 1e3) / 1e9, rel=1e-9)

    # without --ours the script picks from the run's report.json on validation; its rows are set so that the
    # rule's answer is certain: student-fp32 is the only variant within 2 validation points that is not derived
    # from the teacher (the test figures say the opposite and must not matter)
    report_file = run / "report.json"
    report = json.loads(report_file.read_text())
    rows = {r["variant"]: r for r in report["rows"]}
    top = rows["teacher-fp32"]["validation_accuracy"]
    for r in report["rows"]:
        if not r["variant"].startswith("teacher"):
            r.update(
                validation_accuracy=top - 0.05, flagged=False
            )  # every other student variant: 5 points down
    rows["student-fp32"].update(
        validation_accuracy=top - 0.015, accuracy=0.0, latency_ms_p50=2.0, flagged=False
    )
    rows["student-int8-dynamic"].update(  # faster, 3 validation points down, perfect on test
        validation_accuracy=top - 0.03, accuracy=1.0, latency_ms_p50=1.0, flagged=False
    )
    fastest = {**rows["student-int8-dynamic"], "variant": "teacher-int8-dynamic", "validation_accuracy": top}
    report["rows"].append({**fastest, "latency_ms_p50": 0.5})  # fastest and as good, but the teacher's
    report_file.write_text(json.dumps(report))
    assert load_script("peers").main([str(base / "recipe.yaml"), "--runs", "1"]) == 0
    assert "| (4) ours | `student-fp32` |" in capsys.readouterr().out

    # ours must come from the same training recipe as the peers
    stale = yaml.safe_load((base / "recipe.yaml").read_text())
    stale["seed"] = 1
    (base / "stale.yaml").write_text(yaml.safe_dump(stale))
    assert load_script("peers").main([str(base / "stale.yaml"), "--ours", "student-int8-dynamic"]) == 2
    assert "differs in: seed" in capsys.readouterr().err
