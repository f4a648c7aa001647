"""Errors a user can act on: printed as one line (no traceback) by the CLI."""

from __future__ import annotations


class EdgeCompressError(Exception):
    """Base class: a problem with the user's input or environment.

    ``where`` names the place to look (a recipe field, a file, a column) and is printed first.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class RecipeError(EdgeCompressError):
    """The recipe file is missing, not YAML, or does not match the schema."""


class DataError(EdgeCompressError):
    """The labelled data cannot be read or split as the recipe says."""


class ModelError(EdgeCompressError):
    """A model cannot be found, loaded or built as the recipe says."""


class StageError(EdgeCompressError):
    """A stage ran but its result failed a check (e.g. ONNX parity); the stage is not kept."""

    exit_code = 1


class VocabTrimError(StageError):
    """A vocabulary trimming that would change how the training texts are read, or a tokenizer kind without
    trimming rules: the prune stage then keeps the full vocabulary and logs this line."""
