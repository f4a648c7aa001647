"""A trial's point in the search space, and the recipe pieces it builds (student shape, prune section,
quantization variant); ``chosen_recipe`` writes the whole recipe that builds the chosen point."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgecompress.errors import RecipeError
from edgecompress.search.config import SearchSpace


@dataclass(frozen=True)
class Point:
    """What one trial builds; 0 fractions and thresholds mean that part is not pruned."""

    layers: int
    head_fraction: float
    ffn_fraction: float
    head_scope: str
    min_frequency: int  # 0: whole vocabulary
    embedding_rank: int  # 0: whole word table
    quantization: str  # a recipe variant's name
    embeddings: str | None  # the word table's storage in an int8 variant; None: the variant's own

    @property
    def model_name(self) -> str:
        """The pruned model's readable folder name: points that differ only in quantization share it."""
        parts = [
            f"L{self.layers}",
            f"h{round(100 * self.head_fraction):02d}",
            f"f{round(100 * self.ffn_fraction):02d}",
        ]
        if self.head_scope != "global":
            parts.append({"per_layer": "pl", "uniform": "un"}[self.head_scope])
        return "-".join([*parts, f"v{self.min_frequency}", f"r{self.embedding_rank}"])

    @property
    def name(self) -> str:
        """The point's readable name: its model and its quantization."""
        tables = [f"e{self.embeddings}"] if self.embeddings else []
        return "-".join([self.model_name, self.quantization, *tables])

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def prunes(self) -> bool:
        return bool(self.head_fraction or self.ffn_fraction or self.min_frequency or self.embedding_rank)


def quantization_choices(recipe, space: SearchSpace) -> list[str]:
    """The recipe's variants a trial may use (named in the space, or every int8 one that applies to pruned)."""
    variants = {v.name: v for v in recipe.quantization.variants}
    if space.quantization is None:
        names = [n for n, v in variants.items() if v.method.startswith("int8") and "pruned" in v.apply_to]
        if not names:
            raise RecipeError(
                "the recipe has no int8 variant that applies to the pruned model; add one or list variants here",
                where="search.space.quantization",
            )
        return names
    for i, name in enumerate(space.quantization):
        if name not in variants:
            raise RecipeError(
                f"no quantization variant '{name}' in the recipe (known: {', '.join(variants)})",
                where=f"search.space.quantization.{i}",
            )
    return list(space.quantization)


def choices(recipe, space: SearchSpace) -> dict[str, list]:
    """Every parameter's values (the grid sampler's grid; TPE and random draw from the same lists)."""
    prune = recipe.prune
    vocab = [prune.vocab.min_frequency if prune and prune.vocab.enabled else 0]
    rank = [(prune.embeddings.rank or 0) if prune else 0]
    scope = [prune.heads.scope if prune and prune.heads.mode == "structured" else "global"]
    grid = {
        "layers": space.layers or [recipe.student.num_layers],
        "head_fraction": space.head_fraction.values(),
        "ffn_fraction": space.ffn_fraction.values(),
        "head_scope": list(space.head_scope or scope),
        "min_frequency": space.min_frequency or vocab,
        "embedding_rank": space.embedding_rank or rank,
        "quantization": quantization_choices(recipe, space),
        "embeddings": list(space.embeddings or [None]),
    }
    if space.tie_fractions:
        del grid["ffn_fraction"]
    return grid


FRACTIONS = ("head_fraction", "ffn_fraction")


def _share(value: float) -> float:
    """A fraction as a trial uses it: stepped floats carry binary noise (0.1 * 7), rounded away."""
    return round(value, 6)


def suggest(trial, grid: dict[str, list]) -> Point:
    """The trial's point: fractions as stepped floats (TPE models their order), the rest categorical."""
    values = {}
    for name, options in grid.items():
        if len(options) == 1:
            values[name] = options[0]
            trial.set_user_attr(f"fixed_{name}", options[0])
        elif name in FRACTIONS:
            step = round(options[1] - options[0], 6)
            values[name] = _share(trial.suggest_float(name, options[0], options[-1], step=step))
        else:
            values[name] = trial.suggest_categorical(name, options)
    values.setdefault("ffn_fraction", values["head_fraction"])
    return Point(**values)


def point_of(params: dict, grid: dict[str, list]) -> Point:
    """A finished trial's point, from its params and the fixed values of the grid (fractions rounded as
    ``suggest`` rounded them: Optuna stores 0.7000000000000001, the trial built 0.7, and the chosen recipe
    must build the same stage key)."""
    values = {name: params.get(name, options[0]) for name, options in grid.items()}
    values.update({name: _share(values[name]) for name in FRACTIONS if name in values})
    values.setdefault("ffn_fraction", values["head_fraction"])
    return Point(**values)


def student_config(recipe, point: Point):
    """The recipe's student at the point's depth (its own init layers kept when the depth is the recipe's)."""
    if point.layers == recipe.student.num_layers:
        return recipe.student
    return recipe.student.model_copy(update={"num_layers": point.layers, "init_layers": None})


def prune_config(recipe, point: Point):
    """The recipe's prune section (or the defaults) with the point's targets; None when it prunes nothing."""
    from edgecompress.prune.config import PruneConfig

    if not point.prunes:
        return None
    base = recipe.prune.model_dump() if recipe.prune is not None else {}
    heads = {"mode": "none", "fraction": None, "count": None, "threshold": None}
    if point.head_fraction:
        heads |= {"mode": "structured", "fraction": point.head_fraction, "scope": point.head_scope}
    base["heads"] = {**base.get("heads", {}), **heads}
    base["ffn"] = {**base.get("ffn", {}), "fraction": point.ffn_fraction or None, "count": None}
    base["vocab"] = {"enabled": bool(point.min_frequency), "min_frequency": point.min_frequency or 1}
    base["embeddings"] = {**base.get("embeddings", {}), "rank": point.embedding_rank or None}
    return PruneConfig.model_validate(base)


def variant_config(recipe, point: Point, source: str):
    """The point's quantization variant, applied to ``source`` (pruned, or student when nothing is pruned)."""
    qcfg = next(v for v in recipe.quantization.variants if v.name == point.quantization)
    update: dict = {"apply_to": [source]}
    if point.embeddings is not None and hasattr(qcfg, "embeddings") and qcfg.method.startswith("int8"):
        update["embeddings"] = point.embeddings
    return qcfg.model_copy(update=update)


def chosen_recipe(recipe, point: Point, run_dir, note: str):
    """The complete recipe that builds the chosen point in ``run_dir`` (so its stages are reused): the
    teacher, the student at the point's depth, the point's pruning and its one quantized variant."""
    prune = prune_config(recipe, point)
    source = "pruned" if prune is not None else "student"
    qcfg = variant_config(recipe, point, source)
    report = recipe.report.model_copy(update={"operating_point": note})
    return recipe.model_copy(
        update={
            "output_dir": str(run_dir),
            "student": student_config(recipe, point),
            "prune": prune,
            "quantization": recipe.quantization.model_copy(update={"variants": [qcfg]}),
            "mobile": recipe.mobile.model_copy(update={"variants": []}),
            "report": report,
        }
    )
