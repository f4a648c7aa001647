"""Does a stronger teacher pay? Two finished runs' artifacts side by side on the same examples.

    .venv/bin/python benchmarks/teacher_compare.py RUN_A RUN_B [--variant pruned-int8-dynamic-int4emb]
        [--variant-b NAME] [--resamples 2000]

RUN_A and RUN_B are run folders of `edgecompress run` (e.g. mpnet_to_tiny's and bert_to_tiny's). Both must hold
the same validation and test examples (same data, split and seed; checked, or one line saying which split
differs). Each variant is scored from its ONNX Runtime outputs on validation and on test, and the accuracy
difference A - B is given with a 95% paired bootstrap interval (both artifacts scored on each resample of the
same examples). An interval that contains 0 says the two are not told apart on this split.
Writes RUN_A/compare/<name of RUN_B>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgecompress.quiet import quiet_third_party

quiet_third_party()

import numpy as np  # noqa: E402

from edgecompress.data.examples import PreparedData  # noqa: E402
from edgecompress.errors import EdgeCompressError  # noqa: E402
from edgecompress.export.artifact import onnx_size_mb  # noqa: E402
from edgecompress.machine import machine_line  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402
from edgecompress.search.measure import paired_drop, predictions  # noqa: E402
from edgecompress.training.metrics import classification_metrics  # noqa: E402

SPLITS = ("validation", "test")


def load_run(run: Path, variant: str) -> dict:
    """A run folder's data, recipe, teacher and ``variant`` folders; one line naming what is missing."""
    for need in (
        "data/labels.json",
        "recipe.yaml",
        f"models/{variant}/model.onnx",
        "models/teacher-fp32/model.onnx",
    ):
        if not (run / need).is_file():
            raise EdgeCompressError(f"{need} is missing: is this a finished run folder?", where=str(run))
    recipe = load_recipe(run / "recipe.yaml")
    return {
        "run": run,
        "name": recipe.name,
        "max_length": recipe.data.max_length,
        "data": PreparedData.load(run / "data"),
        "variant": variant,
        "folder": run / "models" / variant,
        "teacher": run / "models" / "teacher-fp32",
        "teacher_model": recipe.teacher.model,
    }


def same_examples(a: PreparedData, b: PreparedData) -> None:
    for split in SPLITS:
        ea, eb = a.splits[split], b.splits[split]
        if [(e.text, e.label) for e in ea] != [(e.text, e.label) for e in eb]:
            raise EdgeCompressError(
                f"the two runs' {split} splits differ ({len(ea)} vs {len(eb)} examples): "
                "compare runs of the same data, split_seed and fractions",
                where=f"data/{split}.jsonl",
            )
    if a.labels != b.labels:
        raise EdgeCompressError(f"label sets differ: {a.labels} vs {b.labels}", where="data/labels.json")


def scores(run: dict) -> dict:
    """Predictions and figures of the run's variant and its teacher on both splits."""
    out = {}
    for role, folder in (("variant", run["folder"]), ("teacher", run["teacher"])):
        out[role] = {"mb": onnx_size_mb(folder)}
        for split in SPLITS:
            pred = predictions(folder, run["data"], split, run["max_length"])
            labels = run["data"].label_ids(split)
            out[role][split] = {
                "pred": pred,
                **classification_metrics(pred, labels, len(run["data"].labels)),
            }
    return out


def compare(a: dict, b: dict, resamples: int, seed: int = 0) -> dict:
    same_examples(a["data"], b["data"])
    sa, sb = scores(a), scores(b)
    rows = []
    for run, s in ((a, sa), (b, sb)):
        for role in ("teacher", "variant"):
            name = "teacher-fp32" if role == "teacher" else run["variant"]
            rows.append(
                {
                    "run": run["name"],
                    "teacher_model": run["teacher_model"],
                    "artifact": name,
                    "mb": s[role]["mb"],
                    **{f"{split}_accuracy": s[role][split]["accuracy"] for split in SPLITS},
                    **{f"{split}_f1_macro": s[role][split]["f1_macro"] for split in SPLITS},
                }
            )
    diff = {}
    for split in SPLITS:
        labels = np.asarray(a["data"].label_ids(split))
        # paired_drop gives B - A (its "teacher" minus its "candidate"); the difference A - B is its negation
        d = paired_drop(sb["variant"][split]["pred"], sa["variant"][split]["pred"], labels, resamples, seed)
        diff[split] = {
            "a_minus_b_pts": -d["drop_pts"],
            "low": -d["drop_high"],
            "high": -d["drop_low"],
            "examples": int(len(labels)),
        }
    return {"rows": rows, "difference": diff, "resamples": resamples}


def markdown(result: dict, a: dict, b: dict) -> str:
    lines = [
        f"## `{a['name']}` vs `{b['name']}`: `{a['variant']}` vs `{b['variant']}` ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {machine_line()}. Same validation and test examples (checked); accuracy from "
        "ONNX Runtime outputs.",
        "",
        "| run | teacher | artifact | MB | val acc | test acc | test macro-F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['run']} | {r['teacher_model']} | {r['artifact']} | {r['mb']:.1f} | {r['validation_accuracy']:.4f} "
            f"| {r['test_accuracy']:.4f} | {r['test_f1_macro']:.4f} |"
        )
    lines.append("")
    for split, d in result["difference"].items():
        verdict = (
            "not told apart" if d["low"] <= 0 <= d["high"] else ("A ahead" if d["low"] > 0 else "B ahead")
        )
        lines.append(
            f"- {split} ({d['examples']} examples): A - B = {d['a_minus_b_pts']:+.2f} points, 95% paired "
            f"bootstrap [{d['low']:+.2f}, {d['high']:+.2f}] ({result['resamples']} resamples): {verdict}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument(
        "--variant", default="pruned-int8-dynamic-int4emb", help="RUN_A's artifact (and RUN_B's)"
    )
    parser.add_argument("--variant-b", default=None, help="RUN_B's artifact when it differs from --variant")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.resamples < 100:
        parser.error("--resamples: at least 100")
    try:
        a = load_run(args.run_a, args.variant)
        b = load_run(args.run_b, args.variant_b or args.variant)
        result = compare(a, b, args.resamples)
    except EdgeCompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    text = markdown(result, a, b)
    out = args.run_a / "compare"
    out.mkdir(exist_ok=True)
    (out / f"{args.run_b.name}.md").write_text(text)
    (out / f"{args.run_b.name}.json").write_text(json.dumps(result, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
