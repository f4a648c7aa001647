"""A tiny registry: handlers looked up by name or config type instead of if-chains (timm/torchao style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[Any, T] = {}

    def register(self, key: Any) -> Callable[[T], T]:
        def add(item: T) -> T:
            if key in self._items:
                raise KeyError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = item
            return item

        return add

    def get(self, key: Any) -> T:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(str(k) for k in self._items))
            raise KeyError(f"unknown {self.kind} '{key}' (known: {known})") from None

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def keys(self) -> list[Any]:
        """The registered keys, in registration order."""
        return list(self._items)
