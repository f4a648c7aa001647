"""The sparsity curve: the recipe's pruning at other head / FFN fractions and student depths, each point a
cached stage of the recipe's run folder, exported and quantized like the recipe's final artifact, so the
recipe's choice is read off a measured curve (benchmarks/sparsity_curve.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecompress.errors import EdgeCompressError


@dataclass(frozen=True)
class SweepPoint:
    layers: int  # student layers
    fraction: float  # share of heads and of FFN units removed

    @property
    def name(self) -> str:
        return f"L{self.layers}-p{round(100 * self.fraction):02d}"


def student_for(pipe, layers: int):
    """The recipe's student at ``layers`` layers (the recipe's own stage when the depth matches)."""
    if layers == pipe.recipe.student.num_layers:
        return pipe.student()
    shape = pipe.recipe.student.model_copy(update={"num_layers": layers, "init_layers": None})
    return pipe.student(f"sweep/student-L{layers}", student_cfg=shape)


def prune_config(pipe, fraction: float):
    """The recipe's prune section with both fractions set to ``fraction`` (everything else as the recipe)."""
    base = pipe.recipe.prune
    if base is None:
        raise EdgeCompressError("the sweep varies the recipe's pruning: add a prune section", where="prune")
    heads = base.heads.model_copy(
        update={"mode": "structured", "fraction": fraction, "count": None, "threshold": None}
    )
    ffn = base.ffn.model_copy(update={"fraction": fraction, "count": None})
    return base.model_copy(update={"heads": heads, "ffn": ffn})


def final_variant_config(pipe, name: str | None = None):
    """The quantization variant the sweep points get: ``name`` from the recipe, else its first int8 variant
    that applies to the pruned model."""
    variants = [v for v in pipe.recipe.quantization.variants if "pruned" in v.apply_to]
    if name is not None:
        variants = [v for v in variants if v.name == name]
    variants = [v for v in variants if v.method.startswith("int8")]
    if not variants:
        raise EdgeCompressError(
            f"no int8 variant {name or ''} applies to the pruned model", where="--variant"
        )
    return variants[0]


def build_point(pipe, point: SweepPoint, qcfg) -> dict:
    """Train (or reuse) one point; returns its fp32 and quantized variant folders and the prune record."""
    student = student_for(pipe, point.layers)
    pruned = pipe.pruned(f"sweep/{point.name}", prune_config(pipe, point.fraction), student=student)
    fp32 = f"sweep-{point.name}-fp32"
    pipe.export(fp32, pruned)
    return {"fp32": pipe.variants[fp32], "quantized": pipe.quantize(fp32, qcfg), "record": pruned.record}
