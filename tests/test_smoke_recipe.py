"""recipes/smoke.yaml end to end: the real embedded MiniLM teacher and Rotten Tomatoes data (~1 min)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgecompress.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_recipe_end_to_end(tmp_path):
    out = tmp_path / "smoke"
    result = CliRunner().invoke(app, ["run", str(ROOT / "recipes" / "smoke.yaml"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    rows = {r["variant"]: r for r in report["rows"]}
    students = {f"{m}-{p}" for m in ("student", "pruned") for p in ("fp32", "int8-dynamic", "int8-static")}
    assert set(rows) == {"teacher-fp32", "student-int4"} | students
    assert rows["pruned-fp32"]["params"] < 0.8 * rows["student-fp32"]["params"]
    assert rows["teacher-fp32"]["params"] > 22_000_000
    assert rows["student-int8-dynamic"]["size_mb"] * 4 < rows["teacher-fp32"]["size_mb"]
    # 32 steps on 512 snippets already beat a constant guess (macro-F1 of always "positive" here is about 0.37)
    assert all(r["f1_macro"] > 0.40 for r in rows.values()), rows
    parity = json.loads((out / "models" / "student-fp32" / "manifest.json").read_text())["parity_vs_pytorch"]
    assert parity["max_abs_logit_diff"] < 1e-3
    # 4-bit weights through INC: far smaller than the fp32 student, and the artifact is INC's model
    int4 = rows["student-int4"]
    assert int4["size_mb"] * 5 < rows["student-fp32"]["size_mb"] and int4["inc_onnx_agreement"] >= 0.995
    # mobile: the .ort file loads and runs; every variant has a peak-memory figure
    assert int4["ort_runs"] and (out / "mobile" / "student-int4" / "model.ort").is_file()
    assert all(r["peak_rss_mb"] > 0 for r in rows.values())
    md = (out / "report.md").read_text()
    assert "## Mobile-class profile" in md and "## Accuracy checks" in md
