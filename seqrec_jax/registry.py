"""Registries: name -> component, filled by decorators next to each definition.

Config choices (`model.name`, `task.name`, `loss.name`, `loss.sampler`, the objective)
are read from these, so adding a component is adding one module; nothing keeps a
hand-made list of names.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Entry(Generic[T]):
  name: str
  obj: T
  meta: dict


class Registry(Generic[T]):
  """A named table of components of one kind ("model", "loss", ...)."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Entry[T]] = {}

  def register(self, name: str, **meta: Any) -> Callable[[T], T]:
    """Decorator: `@REG.register("name", key=value)` stores the object and its metadata."""

    def add(obj: T) -> T:
      if name in self._entries and self._entries[name].obj is not obj:
        raise ValueError(f"{self.kind} {name!r} is registered twice "
                         f"({self._entries[name].obj!r} and {obj!r})")
      self._entries[name] = Entry(name, obj, dict(meta))
      return obj

    return add

  def entry(self, name: str) -> Entry[T]:
    if name not in self._entries:
      close = difflib.get_close_matches(str(name), self.names(), n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise ValueError(f"unknown {self.kind} {name!r}{hint}; registered: {list(self.names())}")
    return self._entries[name]

  def get(self, name: str) -> T:
    return self.entry(name).obj

  def meta(self, name: str) -> dict:
    return self.entry(name).meta

  def names(self) -> tuple[str, ...]:
    return tuple(sorted(self._entries))

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __iter__(self):
    return iter(self._entries.values())
