"""Load classifiers and tokenizers from a local folder, a hub id or an embedded package, safely.

Weights are read from safetensors only, and a checkpoint's own code runs only when the recipe says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from edgecompress.embedded import EMBEDDED_MODELS, locate_embedded  # noqa: F401 (the registry, re-exported)
from edgecompress.errors import ModelError, RecipeError
from edgecompress.modeling.embeddings import EMBEDDING_RANK, restore_factorized
from edgecompress.modeling.layers import FFN_SIZES, HEADS, ffn_widths, rebuild_heads, resize_ffn

EMBEDDED_PREFIX = "embedded:"  # then a name in edgecompress.embedded.EMBEDDED_MODELS


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: ``location`` is a local folder or a hub id."""

    spec: str
    location: str
    is_local: bool
    field: str  # recipe field, for error messages
    revision: str | None = None
    trust_remote_code: bool = False


def resolve(
    spec: str,
    field: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    install: bool = True,
) -> ModelSource:
    """``install=False``: an on-demand embedded model that is not in the cache yet raises
    edgecompress.embedded.NotInstalled instead of being downloaded (``validate``)."""
    if spec.startswith(EMBEDDED_PREFIX):
        folder = locate_embedded(spec[len(EMBEDDED_PREFIX) :], field, install=install)
        return ModelSource(spec, str(folder), True, field, None, False)
    path = Path(spec).expanduser()
    looks_local = spec.startswith((".", "/", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise ModelError(f"'{spec}' is not a folder", where=field)
        if not (path / "config.json").is_file():
            raise ModelError(f"'{spec}' has no config.json (not a transformers model folder)", where=field)
        if not any(path.glob("*.safetensors")):
            raise ModelError(
                f"'{spec}' has no *.safetensors weights; edgecompress loads safetensors only "
                "(re-save the model with save_pretrained(safe_serialization=True))",
                where=field,
            )
        return ModelSource(spec, str(path), True, field, None, trust_remote_code)
    return ModelSource(spec, spec, False, field, revision, trust_remote_code)


def _load_error(src: ModelSource, exc: Exception) -> ModelError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if not src.is_local:
        first = f"not a local folder, and loading it from the hub failed ({first})"
    return ModelError(f"cannot load '{src.spec}': {first}", where=src.field)


def _kwargs(src: ModelSource) -> dict:
    kw = {"trust_remote_code": src.trust_remote_code}
    if src.revision:
        kw["revision"] = src.revision
    return kw


def load_config(src: ModelSource):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(src.location, **_kwargs(src))
    except (OSError, ValueError, KeyError) as exc:
        raise _load_error(src, exc) from None


TOKENIZER_PROBE = ("edgecompress reads 12 words", "and a second text ✓")


def load_tokenizer(src: ModelSource):
    """The model's tokenizer, tried on a text pair: a broken one (e.g. a ``vocab.txt`` that links to some other
    file, so ``[UNK]`` is missing) loads without complaint and fails only on the first batch of training. Any
    failure is one ModelError naming the folder and the recipe field (the tokenizers library raises a bare
    Exception)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(src.location, **_kwargs(src))
        tokenizer(*TOKENIZER_PROBE)
    except Exception as exc:  # whatever a broken tokenizer raises
        if not src.is_local:
            raise _load_error(src, exc) from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"the tokenizer in '{src.location}' cannot be loaded or used: {first}", where=src.field
        ) from None
    return tokenizer


def has_classification_head(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))


def placeholder_head_names(config) -> bool:
    """True when the checkpoint's head names its rows only LABEL_0, LABEL_1, ... (transformers' defaults): the
    names say nothing about which label a row is, so the rows cannot be matched to the data's labels."""
    return has_classification_head(config) and all(
        str(config.id2label[i]).upper() == f"LABEL_{i}" for i in range(config.num_labels)
    )


def head_label_order(config, labels: list[str], head_labels: list[str] | None = None) -> list[int] | None:
    """If the checkpoint already classifies into ``labels``, the checkpoint's row for each of our labels.

    A row is known by its name in the checkpoint's config, or by ``head_labels`` (the recipe's names, in row
    order), compared without case. Placeholder names (LABEL_0, ...) never match: a head in the wrong order
    would pass every check and predict the opposite labels.
    """
    where = "teacher.head_labels"
    if not has_classification_head(config):
        if head_labels is not None:
            raise RecipeError(
                "the checkpoint has no classification head whose rows it could name", where=where
            )
        return None
    if head_labels is not None and len(head_labels) != config.num_labels:
        raise RecipeError(
            f"{len(head_labels)} names, but the checkpoint's head has {config.num_labels} rows", where=where
        )
    names = head_labels or [str(config.id2label[i]) for i in range(config.num_labels)]
    rows = {n.lower(): i for i, n in enumerate(names)}
    if len(names) == len(labels) and set(rows) == {lbl.lower() for lbl in labels}:
        return [rows[lbl.lower()] for lbl in labels]
    if head_labels is not None:
        raise RecipeError(
            f"names {', '.join(head_labels)}, but the data's labels are {', '.join(labels)}", where=where
        )
    return None


def _classifier_layer(model, num_labels: int) -> torch.nn.Linear:
    last = None
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == num_labels:
            last = module
    if last is None:
        raise ModelError("cannot find the classification layer to align labels", where="teacher.model")
    return last


def _overrides(config) -> dict:
    """Config values a family is always built with (ModernBERT: reference_compile False), as
    ``from_pretrained`` keyword arguments; none for a family edgecompress has no adapter for."""
    from edgecompress.modeling.encoders import SUPPORTED

    model_type = getattr(config, "model_type", None)
    return dict(SUPPORTED.get(model_type).config_overrides) if model_type in SUPPORTED else {}


def load_classifier(
    src: ModelSource, labels: list[str], eager_attention: bool = True, head_labels: list[str] | None = None
):
    """A sequence classifier for ``labels`` and whether its existing head was kept (True) or is new (False);
    ``head_labels`` names the checkpoint's head rows when its config does not (see head_label_order)."""
    from transformers import AutoModelForSequenceClassification

    config = load_config(src)
    order = head_label_order(config, labels, head_labels)
    kw = _kwargs(src)
    if eager_attention:
        kw["attn_implementation"] = "eager"
    kw.update(_overrides(config))
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            src.location,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lbl: i for i, lbl in enumerate(labels)},
            ignore_mismatched_sizes=order is None,
            use_safetensors=True,
            **kw,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _load_error(src, exc) from None
    if order is not None and order != list(range(len(labels))):
        head = _classifier_layer(model, len(labels))
        with torch.no_grad():
            head.weight.copy_(head.weight[order].clone())
            if head.bias is not None:
                head.bias.copy_(head.bias[order].clone())
    return model, order is not None


def _key_list(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def check_checkpoint_keys(folder, model, missing: list[str], unexpected: list[str]) -> None:
    """Refuse weights that do not belong to the model ``config.json`` describes: a key the model does not have,
    or a weight it has and the checkpoint lacks (buffers such as position ids are rebuilt, not loaded)."""
    buffers = {name for name, _ in model.named_buffers()}
    missing = sorted(k for k in missing if k not in buffers)
    problems = []
    if unexpected:
        problems.append(f"unexpected keys {_key_list(sorted(unexpected))}")
    if missing:
        problems.append(f"missing keys {_key_list(missing)}")
    if problems:
        raise ModelError(
            f"the weights do not match config.json ({'; '.join(problems)}); re-save the model, or delete the "
            "folder to rebuild it",
            where=str(folder),
        )


def _size_mismatch(folder, exc: RuntimeError) -> ModelError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith("size mismatch")), lines[0] if lines else "")
    return ModelError(f"the weights do not match config.json ({first})", where=str(folder))


def load_saved_classifier(folder: str | Path, eager_attention: bool = True):
    """A classifier this pipeline saved, including the shapes plain ``from_pretrained`` cannot rebuild:
    feed-forward widths that differ per layer (``config.edgecompress_ffn_sizes``), a factorised word table
    (``config.edgecompress_embedding_rank``) and the head counts of families whose ``config.pruned_heads``
    cannot rebuild them (``config.edgecompress_heads``). Every weight must fit (check_checkpoint_keys)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from edgecompress.modeling.classic import ClassicClassifier, ClassicConfig, is_classic

    kw = {"attn_implementation": "eager"} if eager_attention else {}
    if is_classic(folder):
        model = ClassicClassifier(ClassicConfig.from_folder(folder))
    else:
        config = AutoConfig.from_pretrained(folder)
        for key, value in _overrides(config).items():
            setattr(config, key, value)
        own = (FFN_SIZES, EMBEDDING_RANK, HEADS)
        if not any(getattr(config, key, None) for key in own):
            try:
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    folder, config=config, use_safetensors=True, output_loading_info=True, **kw
                )
            except RuntimeError as exc:
                raise _size_mismatch(folder, exc) from None
            check_checkpoint_keys(folder, model, info["missing_keys"], info["unexpected_keys"])
            return model.eval()
        model = AutoModelForSequenceClassification.from_config(config, **kw)  # applies config.pruned_heads
        rebuild_heads(model)  # the families that record edgecompress_heads instead
        if getattr(config, FFN_SIZES, None):
            resize_ffn(model, ffn_widths(config))
        restore_factorized(model)
    state = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(f))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise _size_mismatch(folder, exc) from None
    check_checkpoint_keys(folder, model, result.missing_keys, result.unexpected_keys)
    return model.eval()
