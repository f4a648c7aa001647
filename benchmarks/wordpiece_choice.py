"""Which word-pieces to keep, and how to store them: the accuracy / size curve of each choice.

    .venv/bin/python benchmarks/wordpiece_choice.py recipes/bert_to_tiny.yaml

On the recipe's distilled student (no retraining, so each row is what the choice alone costs), every choice
is exported, quantized with the recipe's first int8 variant and scored with ONNX Runtime on the validation
split (what a choice is made on) and the test split (reported, never the reason for a choice):
  - keep the word-pieces seen at least m times in the training split (prune.vocab.min_frequency), embedding
    tables int8 with one scale per table (Optimum's quantized Gather);
  - keep every piece the training split uses (m = 1) and shrink the bytes instead: 4-bit blocks
    (embeddings: int4, GatherBlockQuantized), a rank-r factorised table (prune.embeddings.rank, SVD), or both.
In the recipe, factorisation happens before the recovery distillation, which then trains the factors: the
rank rows here are the starting point, not the result. Work files go to <run>/wordpiece_choice/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from edgecompress.quiet import quiet_third_party

quiet_third_party()

from transformers import AutoTokenizer  # noqa: E402

from edgecompress.context import StageContext  # noqa: E402
from edgecompress.data.examples import PreparedData  # noqa: E402
from edgecompress.export import stage as export_stage  # noqa: E402
from edgecompress.export.artifact import onnx_size_mb  # noqa: E402
from edgecompress.modeling.embeddings import factorize_word_embeddings  # noqa: E402
from edgecompress.modeling.loading import load_saved_classifier  # noqa: E402
from edgecompress.prune.vocab import kept_token_ids, trim_vocabulary  # noqa: E402
from edgecompress.quantize import QuantContext, quantize  # noqa: E402
from edgecompress.quantize.config import Int8DynamicConfig  # noqa: E402
from edgecompress.recipe import load_recipe  # noqa: E402

# (name, min_frequency or None for the whole vocabulary, rank or None, embeddings storage)
CHOICES = [
    ("whole vocabulary", None, None, "per_tensor"),
    ("whole vocabulary, int4 blocks", None, None, "int4"),
    ("seen >= 1", 1, None, "per_tensor"),
    ("seen >= 2", 2, None, "per_tensor"),
    ("seen >= 3", 3, None, "per_tensor"),
    ("seen >= 5", 5, None, "per_tensor"),
    ("seen >= 1, int4 blocks", 1, None, "int4"),
    ("seen >= 1, rank 192", 1, 192, "per_tensor"),
    ("seen >= 1, rank 128", 1, 128, "per_tensor"),
    ("seen >= 1, rank 96", 1, 96, "per_tensor"),
    ("seen >= 1, rank 128, int4 blocks", 1, 128, "int4"),
]


def embedding_mb(onnx_path: Path) -> float:
    """Bytes of the embedding tables (and their scales) in a graph: the Gather / GatherBlockQuantized data."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: i for i in graph.initializer}
    names = set()
    for node in graph.node:
        if node.op_type in ("Gather", "GatherBlockQuantized") and node.input[0] in inits:
            names |= {n for n in node.input if n in inits and len(inits[n].dims) >= 1 and n != node.input[1]}
        if (
            node.op_type == "DequantizeLinear"
            and node.input[0] in inits
            and len(inits[node.input[0]].dims) == 2
        ):
            names |= {n for n in node.input if n in inits}
    return sum(numpy_helper.to_array(inits[n]).nbytes for n in names) / 1e6


def build(student_dir: Path, data, max_len: int, min_frequency, rank, out: Path) -> int:
    model = load_saved_classifier(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    if min_frequency is not None:
        texts, pairs = data.texts("train")
        tokenizer = trim_vocabulary(
            model, tokenizer, kept_token_ids(tokenizer, texts, pairs, max_len, min_frequency)
        )
    if rank is not None:
        factorize_word_embeddings(model, rank)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return len(tokenizer.get_vocab())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe")
    parser.add_argument("--output", default=None, help="run folder (default: the recipe's)")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    run_dir = Path(args.output) if args.output else recipe.run_dir
    if not (run_dir / "student" / "stage.json").is_file():
        print(f"error: {run_dir}: no finished student stage; run the recipe first", file=sys.stderr)
        return 2
    from edgecompress.benchmark.stage import evaluate_variant

    work = run_dir / "wordpiece_choice"
    shutil.rmtree(work, ignore_errors=True)
    data, max_len = PreparedData.load(run_dir / "data"), recipe.data.max_length
    base = next(
        (v for v in recipe.quantization.variants if isinstance(v, Int8DynamicConfig)), Int8DynamicConfig()
    )
    context = StageContext(None, data, recipe.seed, max_len)
    print(
        "| word-pieces kept | stored as | word-pieces | embeddings MB | model MB | validation accuracy | "
        "test accuracy | test macro-F1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, (name, freq, rank, storage) in enumerate(CHOICES):
        pt = work / f"{i}-pt"
        vocab = build(run_dir / "student", data, max_len, freq, rank, pt)
        fp32, q = work / f"{i}-fp32", work / f"{i}-int8"
        export_stage.run(recipe.export, export_stage.ExportInputs(pt, name), context, fp32)
        qcfg = base.model_copy(update={"embeddings": storage, "max_accuracy_drop": None})
        quantize(qcfg, fp32, q, QuantContext(data, max_len, recipe.seed, work / "scratch", source_model=pt))
        scores = evaluate_variant(q, AutoTokenizer.from_pretrained(q), data, max_len, 64)
        stored = "int8 per table" if storage == "per_tensor" else "int4 blocks of 32"
        print(
            f"| {name} | {stored} | {vocab} | {embedding_mb(q / 'model.onnx'):.2f} | {onnx_size_mb(q):.2f} | "
            f"{scores['validation_accuracy']:.4f} | {scores['accuracy']:.4f} | {scores['f1_macro']:.4f} |",
            flush=True,
        )
        shutil.rmtree(pt)
        shutil.rmtree(fp32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
