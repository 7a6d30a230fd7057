"""`Interactions`: the one record every raw-format reader produces."""

from __future__ import annotations

import dataclasses

import numpy as np


class DataFormatError(ValueError):
  """A raw data file is malformed; the message names the file and 1-based line."""

  def __init__(self, path: str, line: int | None, message: str):
    where = f"{path}:{line}" if line is not None else str(path)
    super().__init__(f"{where}: {message}")
    self.path = str(path)
    self.line = line


@dataclasses.dataclass
class Interactions:
  """A flat log of (user, item, timestamp[, rating]) events, in file order.

  Raw ids are kept as read (int64 for numeric formats, str for others); they are
  re-mapped to dense ids by `preprocess`. `timestamps` is the event time, or the
  position in the file when a format carries order only. `report` counts what the
  reader read and dropped (`lines`, `malformed`, ...).
  """

  users: np.ndarray  # [N] raw user ids
  items: np.ndarray  # [N] raw item ids
  timestamps: np.ndarray  # [N] int64
  ratings: np.ndarray | None = None  # [N] float32
  source: str = ""
  report: dict = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return int(self.users.shape[0])

  def take(self, index: np.ndarray) -> "Interactions":
    """Rows `index` (bool mask or int indices), keeping order and report."""
    return Interactions(
        users=self.users[index],
        items=self.items[index],
        timestamps=self.timestamps[index],
        ratings=None if self.ratings is None else self.ratings[index],
        source=self.source,
        report=dict(self.report),
    )
