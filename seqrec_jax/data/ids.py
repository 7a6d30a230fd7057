"""Raw id <-> dense index maps (users; items, whose index 0 is padding)."""

from __future__ import annotations

import re

import numpy as np

_INTEGRAL = re.compile(r"[+-]?(?:[0-9]+(?:\.0*)?|[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+)")


def python_value(value):
  """A numpy scalar as the Python int / str it holds (other values unchanged)."""
  return value.item() if hasattr(value, "item") else value


class IdMap:
  """Raw id <-> dense index. Raw ids are ints or strings as in the data files; a lookup
  accepts either spelling (42, "42"). `skip_first`: index 0 is a placeholder (items)."""

  def __init__(self, raw_ids: np.ndarray, skip_first: bool = False):
    self.raw = raw_ids
    self._index: dict = {}
    for i, raw in enumerate(raw_ids.tolist()):
      if skip_first and i == 0:
        continue
      self._index.setdefault(raw, i)
      self._index.setdefault(str(raw), i)

  def get(self, raw) -> int | None:
    if isinstance(raw, bool):
      return None
    i = self._index.get(raw)
    if i is None and isinstance(raw, str):
      text = raw.strip()
      i = self._index.get(text)
      if i is None and _INTEGRAL.fullmatch(text):  # "42", "42.0", "4.2e1"
        try:
          i = self._index.get(int(float(text)) if not text.lstrip("+-").isdigit()
                              else int(text))
        except (ValueError, OverflowError):
          i = None
    if i is None and not isinstance(raw, str):
      i = self._index.get(str(raw))
    return i

  def __len__(self) -> int:
    return len(self._index)


def item_map(item_ids: np.ndarray) -> IdMap:
  """Raw item id -> dense id in 1..num_items (`item_ids[0]` is the padding placeholder)."""
  return IdMap(item_ids, skip_first=True)
