"""The recipe: one typed, versioned schema that is the single source of truth for every option.

The CLI (``--set``), the JSON Schema (``edgecompress schema``) and docs/recipe.md all derive from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from edgecompress.benchmark.config import BenchmarkConfig
from edgecompress.config_base import StageConfig
from edgecompress.config_limits import SEED_MAX
from edgecompress.data.config import DataConfig
from edgecompress.distill.config import DistillConfig, StudentConfig
from edgecompress.errors import RecipeError
from edgecompress.export.config import ExportConfig
from edgecompress.mobile.config import MobileConfig
from edgecompress.prune.config import PruneConfig
from edgecompress.quantize.config import METHODS, Int8DynamicConfig, Int8StaticConfig, QuantVariantConfig
from edgecompress.report.config import ReportConfig
from edgecompress.search.config import SearchConfig
from edgecompress.teacher.config import TeacherConfig

RECIPE_VERSION = 1


class QuantizationConfig(StageConfig):
    """The quantized variants built from each student model."""

    variants: list[QuantVariantConfig] = Field(
        default_factory=lambda: [Int8DynamicConfig(), Int8StaticConfig()],
        description="One entry per quantized variant; 'method' picks the quantizer.",
    )

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list) -> list:
        names = [v.name for v in variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique, repeated: {', '.join(dupes)}")
        return variants


class Recipe(StageConfig):
    """An edgecompress recipe (version 1)."""

    version: Literal[1] = Field(RECIPE_VERSION, description="Schema version of this recipe.")
    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Run name, used in reports and in the default run folder runs/<name> (letters, digits, "
        "_ . -; not . or ..).",
    )
    output_dir: str | None = Field(
        None, description="Run folder; default runs/<name>. --output overrides it."
    )
    seed: int = Field(
        42, ge=0, le=SEED_MAX, description="Seeds data splits, initialisation and shuffling (0 to 2**32 - 1)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Training device; auto uses a GPU if present."
    )
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto",
        description="Training precision (autocast; saved weights, ONNX and everything after stay fp32). auto: "
        "bf16 on a GPU with bf16 and on a CPU with avx512_bf16 or amx_bf16, else fp32 (no). bf16 where the "
        "device lacks it, and fp16 on a CPU, train in fp32 with a warning. Each training stage records what "
        "it used.",
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Labelled text and its splits.")
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig, description="The teacher model and its fine-tuning."
    )
    student: StudentConfig = Field(default_factory=StudentConfig, description="The student model.")
    distill: DistillConfig = Field(
        default_factory=DistillConfig, description="Distillation losses and training."
    )
    prune: PruneConfig | None = Field(
        None,
        description="Prune the distilled student (heads, FFN units, vocabulary); absent: no prune stage.",
    )
    quantization: QuantizationConfig = Field(
        default_factory=QuantizationConfig, description="Quantized variants."
    )
    export: ExportConfig = Field(default_factory=ExportConfig, description="ONNX export and parity check.")
    benchmark: BenchmarkConfig = Field(
        default_factory=BenchmarkConfig, description="ONNX Runtime measurements."
    )
    mobile: MobileConfig = Field(
        default_factory=MobileConfig, description="Variants converted to ONNX Runtime's mobile .ort format."
    )
    report: ReportConfig = Field(default_factory=ReportConfig, description="Report outputs.")
    search: SearchConfig | None = Field(
        None,
        description="What edgecompress search may change, its accuracy budget and its engine (absent: the "
        "defaults); edgecompress run ignores it.",
    )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _bare_no(cls, value):
        """YAML reads a bare ``no`` as false: ``mixed_precision: no`` and ``--set mixed_precision=no`` mean no."""
        return "no" if value is False else value

    @field_validator("name")
    @classmethod
    def _not_a_parent_folder(cls, name: str) -> str:
        if set(name) == {"."}:
            raise ValueError(f"'{name}' names a folder outside runs/; use letters or digits")
        return name

    @model_validator(mode="after")
    def _classic_students_have_no_layers_to_match(self) -> Recipe:
        arch = self.student.architecture
        if arch == "transformer":
            return self
        if self.distill.weights.attention:
            raise ValueError(
                f"distill.weights.attention: attention transfer needs a transformer student (student.architecture "
                f"is {arch}); set it to 0"
            )
        if self.distill.layer_mapping is not None:
            raise ValueError(f"distill.layer_mapping: a {arch} student has no layers to map")
        p = self.prune
        if p is not None and (p.heads.mode != "none" or p.ffn.enabled or p.embeddings.enabled):
            raise ValueError(
                f"prune: a {arch} student has no heads or FFN units; only prune.vocab applies to it"
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        mapping = self.distill.layer_mapping
        if mapping is not None and self.student.model is None and len(mapping) != self.student.num_layers:
            raise ValueError(
                f"distill.layer_mapping has {len(mapping)} entries but student.num_layers is "
                f"{self.student.num_layers}"
            )
        if self.prune is None:
            for i, variant in enumerate(self.quantization.variants):
                if "pruned" in variant.apply_to and "apply_to" in variant.model_fields_set:
                    raise ValueError(
                        f"quantization.variants.{i}.apply_to: 'pruned' needs a prune section (there is no "
                        "pruned model to quantize)"
                    )
        mobile = self.benchmark.mobile
        for field, tokens in (
            ("benchmark.sequence_length", self.benchmark.sequence_length),
            ("benchmark.mobile.short_length", mobile and mobile.short_length),
            ("benchmark.mobile.typical_length", mobile and mobile.typical_length),
        ):
            if tokens is not None and tokens > self.data.max_length:
                raise ValueError(
                    f"{field}: {tokens} tokens is more than data.max_length ({self.data.max_length}); every "
                    "artifact truncates its inputs to data.max_length tokens, so a longer input would time "
                    "a truncated one"
                )
        if self.search is not None:
            from edgecompress.search.space import choices

            try:
                choices(self, self.search.space)
            except RecipeError as exc:
                raise ValueError(f"{exc.where}: {exc.message}") from None
        known = self.variant_names()
        for i, name in enumerate(self.mobile.variants):
            if name not in known:
                raise ValueError(f"mobile.variants.{i}: no variant '{name}' (known: {', '.join(known)})")
        return self

    def model_sources(self) -> list[str]:
        """The fp32 models the run exports besides the teacher: the student, and the pruned one if any."""
        return ["student", "pruned"] if self.prune is not None else ["student"]

    def variant_names(self) -> list[str]:
        """Every variant the run builds, in report order."""
        names = ["teacher-fp32"]
        for source in self.model_sources():
            names.append(f"{source}-fp32")
            names += [f"{source}-{v.name}" for v in self.quantization.variants if source in v.apply_to]
        return names

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    @property
    def sequence_length(self) -> int:
        return self.benchmark.sequence_length or self.data.max_length


def _format_error(err: dict[str, Any]) -> str:
    # pydantic puts the union member's tag in the location (variants.0.int8_dynamic.name): leave it out
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in METHODS))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{loc}: {msg}" if loc else msg  # a cross-field check names its fields itself


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"cannot set '{dotted}': '{key}' is not a mapping", where="--set")
        node = child
    node[keys[-1]] = value


class _RefusedYaml(Exception):
    """What the recipe loader refuses in otherwise valid YAML, at ``mark``."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.message, self.mark = message, mark


# values a recipe may hold once its YAML aliases are expanded: a full recipe has a few hundred, while nine levels
# of nine aliases (a few hundred bytes) expand to billions and exhaust memory while the recipe is read
MAX_RECIPE_VALUES = 10_000


class _RecipeNodes:
    """Checks of the composed YAML, where an alias is still one shared node: keys given twice (YAML lets the
    last win silently; a second ``distill:`` section replaces the first whole), and what the aliases expand
    to. Each node is visited once, so the check itself never expands anything."""

    def __init__(self, one_line: bool):
        self.one_line = one_line  # a --set value: places are columns
        self.sizes: dict[int, int] = {}  # id(node) -> values below it, aliases expanded
        self.open: set[int] = set()

    def size(self, node: yaml.Node, path: tuple[str, ...]) -> int:
        """Values in ``node`` with aliases expanded; raises _RefusedYaml."""
        if id(node) in self.sizes:
            return self.sizes[id(node)]
        where = ".".join(path) or "the recipe"
        if id(node) in self.open:
            raise _RefusedYaml(f"{where}: a YAML alias that contains itself", node.start_mark)
        self.open.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(self.size(item, (*path, str(i))) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            self._refuse_repeated_keys(node, path)
            total += sum(self.size(value, (*path, str(key.value))) for key, value in node.value)
        self.open.discard(id(node))
        if total > MAX_RECIPE_VALUES:
            raise _RefusedYaml(
                f"{where}: YAML aliases expand it to more than {MAX_RECIPE_VALUES} values (a recipe has a few "
                "hundred); write the values out",
                node.start_mark,
            )
        self.sizes[id(node)] = total
        return total

    def _refuse_repeated_keys(self, node: yaml.MappingNode, path: tuple[str, ...]) -> None:
        seen: dict[str, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = str(key_node.value)
            if key in seen:
                first, again = seen[key], key_node.start_mark
                places = (
                    f"columns {first.column + 1} and {again.column + 1}"
                    if self.one_line
                    else f"lines {first.line + 1} and {again.line + 1}"
                )
                raise _RefusedYaml(f"{'.'.join((*path, key))}: given twice ({places})", again)
            seen[key] = key_node.start_mark


def parse_yaml(text: str, source: str, field: str | None = None) -> Any:
    """YAML text as plain data, refusing keys given twice and aliases that expand past MAX_RECIPE_VALUES: the
    one loader of recipe files (``source`` is the file: errors name its line) and of ``--set`` values
    (``field``: the dotted key the value is set at; errors name ``source``, the option). Raises a
    RecipeError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _RecipeNodes(one_line=field is not None).size(node, tuple(field.split(".")) if field else ())
        return loader.construct_document(node)
    except _RefusedYaml as exc:
        where = source if field is not None else f"{source}:{exc.mark.line + 1}"
        raise RecipeError(exc.message, where=where) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if field is not None:
            raise RecipeError(f"'{text}' is not a YAML value ({problem})", where=source) from None
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise RecipeError(f"not valid YAML: {problem}", where=f"{source}{at}") from None
    except RecursionError:  # [[[[... a few thousand deep: PyYAML's composer recurses
        raise RecipeError("nested too deeply to be a recipe", where=source) from None
    finally:
        loader.dispose()


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (dotted keys, YAML values) as given to ``--set``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise RecipeError(f"expected KEY=VALUE, got '{pair}'", where="--set")
        key, raw = pair.split("=", 1)
        key = key.strip()
        out[key] = parse_yaml(raw, f"--set {key}", field=key) if raw.strip() else None
    return out


def recipe_from_dict(data: Any, source: str = "<recipe>", overrides: dict[str, Any] | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError("the recipe must be a YAML mapping of fields", where=source)
    data = json.loads(json.dumps(data, default=str))  # deep copy, plain types
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        errors = [_format_error(e) for e in exc.errors()]
        more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:])})" if len(errors) > 1 else ""
        raise RecipeError(errors[0] + more, where=source) from None


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a YAML recipe; every problem is a RecipeError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError("recipe file not found", where=str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"not UTF-8 text: byte {exc.start} is 0x{raw[exc.start]:02x}; save the recipe as UTF-8 (YAML files are "
            "UTF-8)",
            where=str(path),
        ) from None
    return recipe_from_dict(parse_yaml(text, str(path)), source=str(path), overrides=overrides)


def recipe_json_schema() -> dict[str, Any]:
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edgecompress recipe"
    return schema


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
