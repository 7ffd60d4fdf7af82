"""`Registry`: named entries of one sort, in the order they were added; the one registry type for
tasks (`facenet_mtl.tasks.TASKS`), datasets (`facenet_mtl.data.readers.DATASETS`) and backbones
(`facenet_mtl.models.backbones.BACKBONES`). It imports nothing of the package, so the module that
defines a registry's entries can sit below every module that fills or reads it.

>>> colours = Registry("colour")
>>> colours.add("red", (255, 0, 0)) and list(colours)
['red']
>>> colours.lookup("blue")
Traceback (most recent call last):
...
ValueError: unknown colour 'blue'; known: red
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import Any


class Registry(MutableMapping):
    """A dict of `what`s by name that refuses a second entry under one name (`add`), names the
    known ones when asked for an unknown one (`lookup`), and can hold one for a `with` block
    (`holding`). Item assignment replaces an entry (what `monkeypatch.setitem` does)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Any] = {}

    def add(self, name: str, entry: Any, replace: bool = False) -> Any:
        """Register `entry` as `name` (after the entries there); ValueError if taken, unless `replace`."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.what} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def lookup(self, name: str) -> Any:
        """The entry `name`; ValueError naming the known ones when there is none."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} '{name}'; known: {', '.join(self._entries)}") from None

    @contextlib.contextmanager
    def holding(self, name: str, entry: Any) -> Iterator[Any]:
        """`entry` registered as `name` for the duration of a `with` block (tests, experiments)."""
        self.add(name, entry)
        try:
            yield entry
        finally:
            self._entries.pop(name, None)

    def __getitem__(self, name: str) -> Any:
        return self._entries[name]

    def __setitem__(self, name: str, entry: Any) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
