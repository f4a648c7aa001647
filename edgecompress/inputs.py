"""Which tokenizer outputs a model or an ONNX graph takes: the one place they are filtered.

A tokenizer returns what its class lists, not what the model reads: ``PreTrainedTokenizerFast`` (ModernBERT's,
or any tokenizer saved from the ``tokenizers`` library) and BERT's class reused for DistilBERT return
token_type_ids by default. DistilBERT's and MPNet's forwards refuse them (TypeError), RoBERTa-style models
have a single token type (a pair's type 1 is an IndexError), ModernBERT swallows them in ``**kwargs``, and
the ONNX graphs of all of these have no such input (ONNX Runtime: "Failed to find input with name").
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from pathlib import Path

TOKENIZER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_inputs(model) -> tuple[str, ...]:
    """The tokenizer outputs ``model``'s forward names as parameters (``**kwargs`` does not count); token types
    only where the config has more than one type (with one, all-zero types are the model's own default)."""
    params = inspect.signature(type(model).forward).parameters
    names = tuple(k for k in TOKENIZER_INPUTS if k in params)
    if getattr(getattr(model, "config", None), "type_vocab_size", 2) <= 1:
        names = tuple(k for k in names if k != "token_type_ids")
    return names


def graph_inputs(graph) -> tuple[str, ...]:
    """The inputs an ONNX graph declares: of an ONNX Runtime session, or of a ``model.onnx`` path."""
    if isinstance(graph, str | Path):
        import onnx

        g = onnx.load(str(graph), load_external_data=False).graph
        weights = {t.name for t in g.initializer}
        return tuple(i.name for i in g.input if i.name not in weights)
    return tuple(i.name for i in graph.get_inputs())


def select(encoded: Mapping, names: Collection[str]) -> dict:
    """The entries of a tokenizer output (or batch) that are in ``names``."""
    return {k: v for k, v in encoded.items() if k in names}
