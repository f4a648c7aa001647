"""What vocabulary trimming alone does to the artifact size.

    .venv/bin/python benchmarks/vocab_trim_effect.py recipes/bert_to_tiny.yaml

Needs a finished run of a recipe with `prune.vocab.enabled`. Builds the pruned model's twin with the full
vocabulary (same pruned layers; embedding rows of the kept word-pieces from the pruned model, the other rows
from the distilled student), exports both to ONNX and quantizes both with the recipe's first int8 variant,
then prints fp32 and int8 sizes side by side, and what trimming alone costs the distilled student in accuracy
at each threshold of --min-frequencies. Work files go to <run>/vocab_trim_effect/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from edgecompress.quiet import quiet_third_party

quiet_third_party()

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from edgecompress.context import StageContext  # noqa: E402
from edgecompress.data.examples import PreparedData  # noqa: E402
from edgecompress.export import stage as export_stage  # noqa: E402
from edgecompress.export.artifact import onnx_size_mb  # noqa: E402
from edgecompress.modeling.loading import load_saved_classifier  # noqa: E402
from edgecompress.prune.vocab import kept_token_ids, trim_vocabulary  # noqa: E402
from edgecompress.quantize import QuantContext, quantize  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402
from edgecompress.studies.scoring import pytorch_split_metrics  # noqa: E402


def untrimmed_twin(pruned_dir: Path, student_dir: Path, out: Path) -> None:
    """The pruned model with the student's full vocabulary restored."""
    model = load_saved_classifier(pruned_dir)
    trimmed_vocab = AutoTokenizer.from_pretrained(pruned_dir).get_vocab()
    full_tok = AutoTokenizer.from_pretrained(student_dir)
    full_vocab = full_tok.get_vocab()
    full = load_saved_classifier(student_dir).get_input_embeddings().weight.detach().clone()
    trimmed = model.get_input_embeddings().weight.detach()
    for token, new_id in trimmed_vocab.items():
        full[full_vocab[token]] = trimmed[new_id]
    emb = torch.nn.Embedding(full.shape[0], full.shape[1], padding_idx=full_tok.pad_token_id)
    with torch.no_grad():
        emb.weight.copy_(full)
    model.set_input_embeddings(emb)
    model.config.vocab_size = full.shape[0]
    model.config.pad_token_id = full_tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    full_tok.save_pretrained(out)


def min_frequency_sweep(student_dir: Path, data: PreparedData, max_len: int, freqs: list[int]) -> None:
    """Trimming alone (no pruning, no recovery) on the distilled student: what each threshold costs.

    The trade-off the recipe's ``prune.vocab.min_frequency`` sets: fewer word-pieces make a smaller file, but
    rarer words then tokenise into smaller pieces the model has not learnt to read."""
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    texts, pairs = data.texts("train")
    print("\nThe distilled student with its vocabulary trimmed at each threshold (no retraining):")
    print("| min_frequency | word-pieces | embedding table int8 MB | validation accuracy | test accuracy |")
    print("|---|---|---|---|---|")
    for freq in [0, *freqs]:
        model = load_saved_classifier(student_dir).eval()
        tok = tokenizer
        if freq:
            keep = kept_token_ids(tokenizer, texts, pairs, max_len, freq)
            tok = trim_vocabulary(model, tokenizer, keep)
        rows, width = model.get_input_embeddings().weight.shape
        val, test = (
            pytorch_split_metrics(model, tok, data, split, max_len)["accuracy"]
            for split in ("validation", "test")
        )
        name = str(freq) if freq else "untrimmed"
        print(f"| {name} | {rows} | {rows * width / 1e6:.2f} | {val:.4f} | {test:.4f} |", flush=True)


def positive_ints(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3]; '' -> []."""
    try:
        values = [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got '{text}'") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be at least 1, got '{text}'")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    parser.add_argument(
        "--min-frequencies",
        type=positive_ints,
        default=[1, 2, 3],
        help="thresholds for the trimming-only accuracy sweep on the student ('' skips it)",
    )
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    run_dir = Path(args.output) if args.output else recipe.run_dir
    if (
        recipe.prune is None
        or not recipe.prune.vocab.enabled
        or not (run_dir / "pruned" / "stage.json").is_file()
    ):
        print("needs a finished run of a recipe with prune.vocab.enabled", file=sys.stderr)
        return 2
    work = run_dir / "vocab_trim_effect"
    shutil.rmtree(work, ignore_errors=True)
    data = PreparedData.load(run_dir / "data")
    max_len = recipe.data.max_length
    untrimmed_twin(run_dir / "pruned", run_dir / "student", work / "untrimmed-pt")
    qcfg = recipe.quantization.variants[0]
    context = StageContext(None, data, recipe.seed, max_len)
    sizes = {}
    for name, model_dir in (("trimmed", run_dir / "pruned"), ("full vocabulary", work / "untrimmed-pt")):
        fp32 = work / f"{name.replace(' ', '-')}-fp32"
        export_stage.run(recipe.export, export_stage.ExportInputs(model_dir, name), context, fp32)
        q = work / f"{name.replace(' ', '-')}-{qcfg.name}"
        quantize(qcfg, fp32, q, QuantContext(data, max_len, recipe.seed, work / "scratch"))
        vocab = len(AutoTokenizer.from_pretrained(model_dir).get_vocab())
        sizes[name] = (vocab, onnx_size_mb(fp32), onnx_size_mb(q))
    full, trim = sizes["full vocabulary"], sizes["trimmed"]
    print(f"\nPruned student, with and without vocabulary trimming ({qcfg.name}):")
    print(f"| vocabulary | word-pieces | fp32 MB | {qcfg.name} MB |")
    print("|---|---|---|---|")
    for name, (vocab, f, q) in sizes.items():
        print(f"| {name} | {vocab} | {f:.2f} | {q:.2f} |")
    print(
        f"| ratio (full / trimmed) | {full[0] / trim[0]:.2f}x | {full[1] / trim[1]:.2f}x | {full[2] / trim[2]:.2f}x |"
    )
    if args.min_frequencies:
        min_frequency_sweep(run_dir / "student", data, max_len, args.min_frequencies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
