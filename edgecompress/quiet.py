"""Silence the third-party noise a user should not see on every run (see STACK.md)."""

from __future__ import annotations

import logging
import os
import warnings

_NOISY_LOGGERS = (
    "torchao",  # "Failed to load ..._C_*.so" when transformers imports torchao
    "torch.utils._pytree",  # Enum register_constant deprecation from torchao
    "neural_compressor",
    "optimum",
    "onnxruntime",
    "accelerate",
)


def quiet_loggers(names=_NOISY_LOGGERS) -> None:
    """Only errors from these loggers (and their children)."""
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_third_party() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    quiet_loggers()
    for pattern in (
        ".*output_attentions.*",
        ".*TracerWarning.*",
        ".*torch.tensor results are registered as constants.*",
        ".*Converting a tensor to a Python.*",
        ".*_register_pytree_node.*",
        ".*We've detected an older driver.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        import torch.jit

        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    except Exception:  # pragma: no cover - torch always present in practice
        pass
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass
