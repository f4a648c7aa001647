"""The base of every typed, serialisable config in a recipe (one per stage, torchao-style)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    """Strict: unknown keys and wrong types are errors (no coercion: ``seed: true`` is not the number 1), so a
    typo never silently falls back to a default. Floats must be finite: ``.inf`` or ``.nan`` anywhere would
    train to NaN weights and fail far later."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of configs and upstream keys: names a stage's result for reuse."""

    def plain(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        return obj

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
