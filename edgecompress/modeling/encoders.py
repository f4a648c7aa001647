"""Where each encoder family keeps its layers, heads, feed-forward units, embeddings and config keys.

One ``EncoderAdapter`` per ``config.model_type``, looked up in a registry (as Optimum keys its export configs by
model type) instead of BERT names spread over the code: pruning, the student, the narrow initialisation and
the embedding tools ask the adapter for a module path, never spell one. Families that edgecompress cannot
compress layer by layer are registered as refusals, so a run stops in preflight with one line instead of
failing half-way (docs/design/encoders.md has the verified facts behind every entry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer

from edgecompress.errors import ModelError
from edgecompress.registry import Registry


@dataclass(frozen=True)
class LayerSlots:
    """Dotted paths relative to ONE layer module."""

    attention: str  # the module carrying the head-count attributes (and .query/.key/.value)
    heads_attr: str  # "num_attention_heads" | "n_heads"
    head_size_attr: str  # "attention_head_size"
    all_head_attr: str  # "all_head_size" | "dim" (DistilBERT's forward reads dim // n_heads)
    query: str
    key: str
    value: str
    attn_out: str  # its INPUT is the per-head context (hook point, column slicing)
    pruned_heads_on: str | None  # the module transformers keeps ``pruned_heads`` on (None: it keeps none)
    ffn_in: str
    ffn_act: str  # its OUTPUT is the per-unit activation (BERT's ``intermediate``)
    ffn_out: str  # its INPUT is the per-unit activation
    attn_norm: str
    ffn_norm: str
    per_head_extra: tuple[str, ...] = ()  # projections sliced like q/k/v when present (DeBERTa pos_key_proj)
    # the attention-probability dropout alone (None: every dropout in the attention module)
    attn_dropout: str | None = None
    qkv: str | None = None  # one fused projection, rows [q heads | k heads | v heads] (ModernBERT's Wqkv)
    ffn_glu: bool = (
        False  # ffn_in rows [activated half | gate half]: unit u is rows u and I + u (ModernBERT's Wi)
    )
    attn_dropout_p: str | None = None  # a float attribute of ``attention`` (ModernBERT's attention_dropout)


BERT_SLOTS = LayerSlots(
    attention="attention.self",
    heads_attr="num_attention_heads",
    head_size_attr="attention_head_size",
    all_head_attr="all_head_size",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attn_out="attention.output.dense",
    pruned_heads_on="attention",
    ffn_in="intermediate.dense",
    ffn_act="intermediate",
    ffn_out="output.dense",
    attn_norm="attention.output.LayerNorm",
    ffn_norm="output.LayerNorm",
)

DISTILBERT_SLOTS = LayerSlots(
    attention="attention",
    heads_attr="n_heads",
    head_size_attr="attention_head_size",
    all_head_attr="dim",
    query="attention.q_lin",
    key="attention.k_lin",
    value="attention.v_lin",
    attn_out="attention.out_lin",
    pruned_heads_on="attention",
    ffn_in="ffn.lin1",
    ffn_act="ffn.activation",
    ffn_out="ffn.lin2",
    attn_norm="sa_layer_norm",
    ffn_norm="output_layer_norm",
)


@dataclass(frozen=True)
class ConfigKeys:
    """The config's own names for the four shapes a student changes (DistilBERT's ``attribute_map`` aliases
    the first three but not ``intermediate_size``: setting it would only add a stray attribute)."""

    layers: str = "num_hidden_layers"
    hidden: str = "hidden_size"
    heads: str = "num_attention_heads"
    ffn: str = "intermediate_size"
    follow_hidden: tuple[
        str, ...
    ] = ()  # keys that must equal the hidden width (DeBERTa's pooler_hidden_size)


MPNET_SLOTS = LayerSlots(
    attention="attention.attn",
    heads_attr="num_attention_heads",
    head_size_attr="attention_head_size",
    all_head_attr="all_head_size",
    query="attention.attn.q",
    key="attention.attn.k",
    value="attention.attn.v",
    attn_out="attention.attn.o",
    pruned_heads_on="attention",
    ffn_in="intermediate.dense",
    ffn_act="intermediate",
    ffn_out="output.dense",
    attn_norm="attention.LayerNorm",
    ffn_norm="output.LayerNorm",
)

DEBERTA_SLOTS = LayerSlots(
    attention="attention.self",
    heads_attr="num_attention_heads",
    head_size_attr="attention_head_size",
    all_head_attr="all_head_size",
    query="attention.self.query_proj",
    key="attention.self.key_proj",
    value="attention.self.value_proj",
    attn_out="attention.output.dense",
    pruned_heads_on=None,  # transformers refuses config.pruned_heads for DeBERTa (NotImplementedError)
    ffn_in="intermediate.dense",
    ffn_act="intermediate",
    ffn_out="output.dense",
    attn_norm="attention.output.LayerNorm",
    ffn_norm="output.LayerNorm",
    per_head_extra=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
    attn_dropout="attention.self.dropout",  # not pos_dropout, which drops relative embeddings
)

MODERNBERT_SLOTS = LayerSlots(
    attention="attn",
    heads_attr="num_heads",
    head_size_attr="head_dim",
    all_head_attr="all_head_size",
    query="attn.Wqkv",
    key="attn.Wqkv",
    value="attn.Wqkv",
    attn_out="attn.Wo",
    pruned_heads_on=None,  # transformers has no _prune_heads for ModernBERT
    ffn_in="mlp.Wi",
    ffn_act="mlp.act",
    ffn_out="mlp.Wo",
    attn_norm="attn_norm",  # Identity in layer 0
    ffn_norm="mlp_norm",
    qkv="attn.Wqkv",
    ffn_glu=True,
    attn_dropout_p="attention_dropout",
)

DISTILBERT_KEYS = ConfigKeys(layers="n_layers", hidden="dim", heads="n_heads", ffn="hidden_dim")


def _get(root: nn.Module, path: str) -> nn.Module | None:
    """The submodule at ``path``, or None when some step is missing or None (an optional pooler)."""
    module = root
    for name in path.split("."):
        module = getattr(module, name, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


@dataclass(frozen=True)
class EncoderAdapter:
    """One encoder family: module paths (layers under the base model, embeddings under the base model, head
    modules under the whole classifier) and the slicing rules pruning needs."""

    model_types: tuple[str, ...]
    layers_path: str  # under the base model
    slots: LayerSlots = BERT_SLOTS
    keys: ConfigKeys = field(default_factory=ConfigKeys)
    word_embeddings: str = "embeddings.word_embeddings"
    position_embeddings: str | None = "embeddings.position_embeddings"
    token_type_embeddings: str | None = "embeddings.token_type_embeddings"
    embedding_norm: str = "embeddings.LayerNorm"
    embedding_project: str | None = None  # a Linear writing the stream from narrower tables (ELECTRA)
    position_offset_from_pad: bool = False  # RoBERTa-style ids: real tokens start at pad_token_id + 1
    # the position table's padding row when the family hard-codes it (MPNet: 1)
    fixed_padding_idx: int | None = None
    # an Embedding (buckets x heads) every layer adds: one column per head (MPNet's relative bias)
    shared_head_bias: str | None = None
    own_head_record: bool = False  # config.pruned_heads cannot rebuild the shapes: edgecompress_heads does
    stream_tables: tuple[str, ...] = ()  # tables (under the base model) read like the stream (DeBERTa's
    # rel_embeddings, which every layer's q/k projections read): narrowed by ``@ P``
    stream_norms: tuple[str, ...] = ()  # their LayerNorms (and ModernBERT's final_norm)
    head_norms: tuple[str, ...] = ()  # LayerNorms inside the head (under the whole classifier)
    config_overrides: tuple[tuple[str, object], ...] = ()  # set on every config built (reference_compile)
    # config key: a layer is global when index % it == 0, else local (ModernBERT)
    layer_every: str | None = None
    int8_keep_float: tuple[str, ...] = ()  # ONNX node-name regexes int8 must leave float (rotary angles)
    # a norm applied after hidden_states is built (ModernBERT: hidden_states[-1] is not last_hidden_state)
    final_norm: str | None = None
    head_square: tuple[str, ...] = ()  # hidden -> hidden head modules (pooler, classifier.dense)
    head_out: str = "classifier"  # the layer that reads the head's vector and writes the logits

    def check_supported(self, config, stage: str = "prune", where: str = "teacher.model") -> None:
        """Supported families pass; refusals override this."""

    # --- config (no weights needed)
    def num_layers(self, config) -> int:
        return getattr(config, self.keys.layers)

    def num_heads(self, config) -> int:
        return getattr(config, self.keys.heads)

    def hidden_size(self, config) -> int:
        return getattr(config, self.keys.hidden)

    def ffn_size(self, config) -> int:
        return getattr(config, self.keys.ffn)

    def set_shape(self, config, name: str, value: int) -> None:
        """Set ``name`` (one of ConfigKeys' fields: layers, hidden, heads, ffn) under the family's own key."""
        setattr(config, getattr(self.keys, name), value)
        if name == "hidden":
            for key in self.keys.follow_hidden:
                if hasattr(config, key):
                    setattr(config, key, value)

    def projects_embeddings(self, config) -> bool:
        """Whether the tables are narrower than the stream, so a projection writes it (ELECTRA-small)."""
        width = getattr(config, "embedding_size", None)
        return self.embedding_project is not None and width not in (None, self.hidden_size(config))

    def position_offset(self, config) -> int:
        """Rows of the position table before position 0 (RoBERTa: the padding index and the rows below it)."""
        if self.fixed_padding_idx is not None:
            return self.fixed_padding_idx + 1
        return (config.pad_token_id or 0) + 1 if self.position_offset_from_pad else 0

    @property
    def uniform_heads(self) -> bool:
        """Heads can only be removed from every layer at once (a per-head table shared by all layers)."""
        return self.shared_head_bias is not None

    def apply_overrides(self, config) -> None:
        for key, value in self.config_overrides:
            setattr(config, key, value)

    def layer_roles(self, config) -> list[str]:
        """What each layer index does, where the family makes it depend on the index (ModernBERT: global
        attention every n layers, layer 0 without an attention norm); "layer" for every layer otherwise."""
        n_layers = self.num_layers(config)
        if self.layer_every is None:
            return ["layer"] * n_layers
        every = getattr(config, self.layer_every)
        return [
            "first global (no attention norm)" if i == 0 else "global" if i % every == 0 else "local"
            for i in range(n_layers)
        ]

    def last_hidden(self, model: nn.Module, hidden_states) -> torch.Tensor:
        """The last layer's output as the head reads it (ModernBERT: final_norm of hidden_states[-1])."""
        norm = None if self.final_norm is None else _get(model.base_model, self.final_norm)
        return hidden_states[-1] if norm is None else norm(hidden_states[-1])

    # --- locating
    def base_prefix(self, model: nn.Module) -> str:
        """Dotted name of the base model inside ``model`` ('' when ``model`` is the base model)."""
        base = model.base_model
        return "" if base is model else model.base_model_prefix

    def layers_name(self, model: nn.Module) -> str:
        prefix = self.base_prefix(model)
        return f"{prefix}.{self.layers_path}" if prefix else self.layers_path

    def layers(self, model: nn.Module) -> nn.ModuleList:
        layers = _get(model.base_model, self.layers_path)
        if not isinstance(layers, nn.ModuleList):
            raise ModelError(
                f"{type(model).__name__} ({model.config.model_type}) has no layer list at "
                f"'{self.layers_path}'",
                where="student",
            )
        return layers

    def part(self, layer: nn.Module, slot: str) -> nn.Module:
        """The module in slot ``slot`` (a LayerSlots field) of one layer."""
        path = getattr(self.slots, slot)
        module = _get(layer, path)
        if module is None:
            raise ModelError(
                f"a {type(layer).__name__} has no '{path}' ({slot}); the layer is not the layout its model type "
                "declares",
                where="prune",
            )
        return module

    def extra_paths(self, layer: nn.Module) -> list[str]:
        """The per-head extra projections this layer has (DeBERTa: only when share_att_key is false)."""
        return [path for path in self.slots.per_head_extra if _get(layer, path) is not None]

    def heads(self, layer: nn.Module) -> int:
        return getattr(self.part(layer, "attention"), self.slots.heads_attr)

    def head_size(self, layer: nn.Module) -> int:
        return getattr(self.part(layer, "attention"), self.slots.head_size_attr)

    def units(self, layer: nn.Module) -> int:
        rows = self.part(layer, "ffn_in").out_features
        return rows // 2 if self.slots.ffn_glu else rows

    def unit_rows(self, layer: nn.Module, units: list[int]) -> list[int]:
        """Rows of ``ffn_in`` that carry ``units`` (GLU: the activated half, then the gate half)."""
        if not self.slots.ffn_glu:
            return list(units)
        n = self.units(layer)
        return list(units) + [n + u for u in units]

    def unit_in_norms(self, layer: nn.Module) -> torch.Tensor:
        """L2 norm of each unit's ``ffn_in`` rows (GLU: both halves together)."""
        w = self.part(layer, "ffn_in").weight.detach()
        if not self.slots.ffn_glu:
            return w.norm(dim=1)
        act, gate = w.chunk(2, dim=0)
        return (act.norm(dim=1) ** 2 + gate.norm(dim=1) ** 2).sqrt()

    def head_row_parts(self, layer: nn.Module, heads: list[int]) -> list[tuple[str, list[int]]]:
        """(path under the layer, rows) of every projection whose rows are per head, for ``heads``: q, k, v
        and the per-head extras, or the fused projection's rows in its [q | k | v] order."""
        d = self.head_size(layer)
        rows = [h * d + j for h in heads for j in range(d)]
        if self.slots.qkv is not None:
            width = self.heads(layer) * d
            return [(self.slots.qkv, [part * width + r for part in range(3) for r in rows])]
        paths = [getattr(self.slots, slot) for slot in ("query", "key", "value")] + self.extra_paths(layer)
        return [(path, rows) for path in paths]

    # --- slicing (kept lists are positions in the layer as it is now)
    def keep_heads(self, layer: nn.Module, keep: list[int]) -> None:
        """Keep only the heads at positions ``keep``: their q/k/v rows and output columns."""
        d = self.head_size(layer)
        index = torch.tensor([h * d + j for h in keep for j in range(d)], dtype=torch.long)
        for path, rows in self.head_row_parts(layer, keep):
            _set(layer, path, prune_linear_layer(_get(layer, path), torch.tensor(rows, dtype=torch.long)))
        _set(layer, self.slots.attn_out, prune_linear_layer(self.part(layer, "attn_out"), index, dim=1))
        attention = self.part(layer, "attention")
        setattr(attention, self.slots.heads_attr, len(keep))
        setattr(attention, self.slots.all_head_attr, d * len(keep))

    def set_pruned_heads(self, layer: nn.Module, gone: set[int]) -> None:
        """What transformers' own ``prune_heads`` would have recorded on the layer."""
        if self.slots.pruned_heads_on is not None:
            self.part(layer, "pruned_heads_on").pruned_heads = set(gone)

    def keep_shared_heads(self, model: nn.Module, keep: list[int]) -> None:
        """Keep only the columns of the shared per-head table (MPNet's relative position bias) at ``keep``."""
        if self.shared_head_bias is None:
            return
        table = _get(model.base_model, self.shared_head_bias)
        new = nn.Embedding(table.num_embeddings, len(keep)).to(table.weight.device, table.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(table.weight[:, keep])
        _set(model.base_model, self.shared_head_bias, new)

    def keep_units(self, layer: nn.Module, keep: list[int]) -> None:
        rows = torch.tensor(self.unit_rows(layer, keep), dtype=torch.long)
        index = torch.tensor(keep, dtype=torch.long)
        _set(layer, self.slots.ffn_in, prune_linear_layer(self.part(layer, "ffn_in"), rows))
        _set(layer, self.slots.ffn_out, prune_linear_layer(self.part(layer, "ffn_out"), index, dim=1))

    def resize_units(self, layer: nn.Module, size: int) -> None:
        """A feed-forward block of ``size`` units (new, untrained weights: a checkpoint is loaded next)."""
        ffn_in, ffn_out = self.part(layer, "ffn_in"), self.part(layer, "ffn_out")
        rows = 2 * size if self.slots.ffn_glu else size
        _set(layer, self.slots.ffn_in, nn.Linear(ffn_in.in_features, rows, bias=ffn_in.bias is not None))
        _set(layer, self.slots.ffn_out, nn.Linear(size, ffn_out.out_features, bias=ffn_out.bias is not None))

    def head_weights(self, layer: nn.Module) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(q, k, v weights whose rows are per head, the output weight whose columns are)."""
        if self.slots.qkv is not None:
            qkv = list(self.part(layer, "qkv").weight.detach().chunk(3, dim=0))
            return qkv, self.part(layer, "attn_out").weight.detach()
        qkv = [self.part(layer, s).weight.detach() for s in ("query", "key", "value")]
        qkv += [_get(layer, path).weight.detach() for path in self.extra_paths(layer)]
        return qkv, self.part(layer, "attn_out").weight.detach()

    # --- embeddings
    def embedding(self, model: nn.Module, which: str) -> nn.Module | None:
        """``which``: word_embeddings | position_embeddings | token_type_embeddings | embedding_norm |
        embedding_project; None when the family or this model has none."""
        path = getattr(self, which)
        return None if path is None else _get(model.base_model, path)

    def set_embedding(self, model: nn.Module, which: str, module: nn.Module) -> None:
        _set(model.base_model, getattr(self, which), module)

    def head_modules(self, model: nn.Module) -> tuple[list[nn.Module], nn.Module | None]:
        """(hidden -> hidden head modules present, the logits layer)."""
        square = [m for m in (_get(model, p) for p in self.head_square) if m is not None]
        return square, _get(model, self.head_out)


SUPPORTED: Registry[EncoderAdapter] = Registry("encoder family")


def register(adapter: EncoderAdapter) -> EncoderAdapter:
    for model_type in adapter.model_types:
        SUPPORTED.register(model_type)(adapter)
    return adapter


BERT = register(EncoderAdapter(("bert",), "encoder.layer", head_square=("bert.pooler.dense",)))
ELECTRA = register(
    EncoderAdapter(
        ("electra",),
        "encoder.layer",
        embedding_project="embeddings_project",
        head_square=("classifier.dense",),
        head_out="classifier.out_proj",
    )
)
ROBERTA = register(
    EncoderAdapter(
        ("roberta", "xlm-roberta"),
        "encoder.layer",
        position_offset_from_pad=True,
        head_square=("classifier.dense",),
        head_out="classifier.out_proj",
    )
)
DISTILBERT = register(
    EncoderAdapter(
        ("distilbert",),
        "transformer.layer",
        slots=DISTILBERT_SLOTS,
        keys=DISTILBERT_KEYS,
        token_type_embeddings=None,
        head_square=("pre_classifier",),
    )
)

DEBERTA_V2 = register(
    EncoderAdapter(
        ("deberta-v2",),
        "encoder.layer",
        slots=DEBERTA_SLOTS,
        keys=ConfigKeys(follow_hidden=("pooler_hidden_size",)),
        own_head_record=True,
        stream_tables=("encoder.rel_embeddings",),
        stream_norms=("encoder.LayerNorm",),
        head_square=("pooler.dense",),
    )
)
MODERNBERT = register(
    EncoderAdapter(
        ("modernbert",),
        "layers",
        slots=MODERNBERT_SLOTS,
        word_embeddings="embeddings.tok_embeddings",
        position_embeddings=None,
        token_type_embeddings=None,
        embedding_norm="embeddings.norm",
        own_head_record=True,
        stream_norms=("final_norm",),
        final_norm="final_norm",
        head_square=("head.dense",),
        head_norms=("head.norm",),
        config_overrides=(("reference_compile", False),),
        layer_every="global_attn_every_n_layers",
        # inv_freq x positions: int8 puts the angles 0.15 rad off at 77 tokens (encoders.md §0.5)
        int8_keep_float=(r"/attn/rotary_emb/MatMul(_\d+)?$",),
    )
)
MPNET = register(
    EncoderAdapter(
        ("mpnet",),
        "encoder.layer",
        slots=MPNET_SLOTS,
        token_type_embeddings=None,
        fixed_padding_idx=1,
        shared_head_bias="encoder.relative_attention_bias",
        own_head_record=True,
        head_square=("classifier.dense",),
        head_out="classifier.out_proj",
    )
)


def supported_names() -> str:
    return ", ".join(SUPPORTED.keys())


@dataclass(frozen=True)
class Refusal:
    """A family edgecompress knows and cannot compress (yet): ``reason(model_type, stage)`` is the one line."""

    model_types: tuple[str, ...]
    reason: Callable[[str, str], str]

    def check_supported(self, config, stage: str = "prune", where: str = "teacher.model") -> None:
        raise ModelError(self.reason(config.model_type, stage), where=where)


REFUSED: Registry[Refusal] = Registry("refused encoder family")


def refuse(refusal: Refusal) -> Refusal:
    for model_type in refusal.model_types:
        REFUSED.register(model_type)(refusal)
    return refusal


def _shared_layers(model_type: str, stage: str) -> str:
    return (
        f"model type '{model_type}': ALBERT shares one set of layer weights across all its layers; the {stage} "
        "stage distils and prunes layer by layer and cannot compress a model with shared layers "
        f"(use one of: {supported_names()})"
    )


refuse(Refusal(("albert",), _shared_layers))


def role_mismatch(student_index: int, role: str, teacher_index: int, teacher_role: str, every: int) -> str:
    return (
        f"model type 'modernbert': ModernBERT student layer {student_index} is a {role} attention layer but "
        f"teacher layer {teacher_index} is {teacher_role} (global every {every} layers, layer 0 has no attention "
        "norm); the distill stage copies a layer only into one of its role: choose init_layers with matching roles"
    )


def uniform_heads_only(model_type: str, stage: str) -> str:
    """The one line for per-layer or global head selection on a family whose heads share one bias table."""
    return (
        f"model type '{model_type}': MPNet's relative position bias is shared by all layers (one column per "
        f"head): the {stage} stage can only remove heads from every layer at once (prune.heads.scope: "
        "uniform); feed-forward pruning is unaffected"
    )


def _unknown(model_type: str, stage: str) -> str:
    return f"model type '{model_type}' is not supported by the {stage} stage (supported: {supported_names()})"


def adapter_for(config_or_model, stage: str = "prune", where: str = "teacher.model") -> EncoderAdapter:
    """The adapter for a model or its config (keyed by ``config.model_type``); a refused or unknown family
    raises one ModelError line naming the model type and ``stage``."""
    config = getattr(config_or_model, "config", config_or_model)
    model_type = getattr(config, "model_type", None) or "?"
    if model_type in SUPPORTED:
        return SUPPORTED.get(model_type)
    if model_type in REFUSED:
        REFUSED.get(model_type).check_supported(config, stage, where)
    raise ModelError(_unknown(model_type, stage), where=where)


def check_supported(config, stage: str, where: str) -> None:
    """Preflight's check: raises the family's one-line refusal, or returns when it is supported."""
    adapter_for(config, stage, where)
