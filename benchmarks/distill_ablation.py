"""How much does distillation with attention transfer add? Same student, data and budget, different losses.

    .venv/bin/python benchmarks/distill_ablation.py recipes/bert_to_tiny.yaml [--modes labels,kd,full]

Reuses the recipe's run folder (data and fine-tuned teacher; `full` is the recipe's own student stage, so
run the recipe first or let this script run those stages). Each mode trains the student built the same
way (same init layers, steps, learning rate, seed) and reports test accuracy / macro-F1 from PyTorch.
  labels: cross-entropy on hard labels only (no teacher)
  kd:     hard labels + soft targets (T^2 KL), no attention or hidden-state transfer
  full:   the recipe's losses (labels + soft targets + attention transfer + hidden states)
Results land in <run>/ablation/ (cached like stages) and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from edgecompress.quiet import quiet_third_party

quiet_third_party()

from edgecompress.distill.config import StudentConfig  # noqa: E402
from edgecompress.errors import EdgeCompressError  # noqa: E402
from edgecompress.pipeline import Pipeline  # noqa: E402
from edgecompress.recipe import load_recipe, parse_overrides  # noqa: E402
from edgecompress.studies.ablation import ablation_student  # noqa: E402
from edgecompress.studies.scoring import saved_model_metrics  # noqa: E402


def mode_row(pipe, mode: str, data, student_cfg=None, tag=None) -> dict:
    """Train (or reuse) the student of ``mode`` and score it on the test split."""
    result = ablation_student(pipe, mode, student_cfg, tag)
    record = result.record
    test = saved_model_metrics(result.path, data, "test", pipe.recipe.data.max_length)
    return {
        "mode": mode,
        "steps": record["steps"],
        "train_s": record.get("train_seconds"),
        "val_accuracy": record["validation"]["accuracy"],
        **{f"test_{k}": v for k, v in test.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--modes", default="labels,kd,full")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument(
        "--student-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="another student shape, e.g. --student-set hidden_size=256 --student-set num_attention_heads=8 "
        "--student-set width_init=teacher (trained in every mode, stages ablation/<tag>/<mode>)",
    )
    parser.add_argument("--tag", default=None, help="stage name for --student-set (default: from its fields)")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    student_cfg, tag = None, None
    if args.student_set:
        try:
            changes = parse_overrides(args.student_set)
            student_cfg = StudentConfig.model_validate({**recipe.student.model_dump(), **changes})
        except (EdgeCompressError, ValidationError) as exc:
            parser.error(f"--student-set: {str(exc).splitlines()[0]}")
        tag = args.tag or "-".join(f"{k}{v}" for k, v in sorted(changes.items()))
    with Pipeline(recipe, output=args.output) as pipe:
        data, run_dir = pipe.data(), pipe.run_dir
        rows = [mode_row(pipe, mode, data, student_cfg, tag) for mode in args.modes.split(",")]
    base = next((r for r in rows if r["mode"] == "labels"), rows[0])
    shape = (student_cfg or recipe.student).model_dump(exclude_defaults=True) or "the recipe's"
    print(
        f"\nStudent: {shape}; {rows[0]['steps']} steps each; test split {len(data.splits['test'])} examples"
    )
    print(
        "| training | steps | train s | val acc | test acc | test macro-F1 | test acc vs labels-only (pts) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        delta = 100 * (r["test_accuracy"] - base["test_accuracy"])
        print(
            f"| {r['mode']} | {r['steps']} | {r['train_s']} | {r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
            f"{r['test_f1_macro']:.4f} | {delta:+.2f} |"
        )
    folder = run_dir / "ablation" / (tag or "")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
