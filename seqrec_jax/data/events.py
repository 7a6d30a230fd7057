"""New interactions for a trained model: read an events file, extend a dataset with it.

`read_events_file(path)` reads CSV (header naming at least `user` and `item`; optional
`time`, `event`, `value`) or JSON lines (one object per line with the same fields: the
service's feedback log, `feedback.jsonl`, is such a file). `extend_dataset(data,
events)` appends the positive events to each user's history in time order and extends
the id maps: an unknown user or item gets the next free dense index, so every existing
id keeps its index (and a trained model's rows stay aligned with it).

Errors name the file, the line and the field.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os

import numpy as np

from seqrec_jax.data.dataset import SequenceDataset
from seqrec_jax.data.ids import IdMap, item_map, python_value
from seqrec_jax.data.interactions import DataFormatError
from seqrec_jax.data.textio import parse_int

# Events that say the user wanted the item (the rest, e.g. "skip", are not interactions).
POSITIVE_EVENTS = ("view", "click", "add_to_cart", "purchase", "rating", "like")


@dataclasses.dataclass
class Events:
  """Events in file order, raw ids as read (ints where the text is an integer)."""

  users: list
  items: list
  times: list  # float unix seconds, or None (then: after the user's known history)
  kinds: list  # event type ("" when the file has none)
  values: list  # float or None (e.g. a rating)
  source: str = ""

  def __len__(self) -> int:
    return len(self.users)


def _id(value, path: str, line: int, field: str):
  """A raw id as given: a JSON int, or the stripped text (the id maps match "42" with
  42 and "3.0" with 3, and a new id's type is decided when it is added)."""
  if isinstance(value, bool) or value is None or isinstance(value, (list, dict, float)):
    if isinstance(value, float) and value.is_integer():
      return int(value)
    raise DataFormatError(path, line, f"field {field!r} must be an int or a string id, got "
                          f"{json.dumps(value)}")
  if isinstance(value, int):
    return value
  text = str(value).strip()
  if not text:
    raise DataFormatError(path, line, f"field {field!r} is empty")
  return text


def _number(value, path: str, line: int, field: str) -> float | None:
  if value is None or value == "":
    return None
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise DataFormatError(path, line, f"field {field!r} must be a number, got "
                          f"{json.dumps(value) if not isinstance(value, str) else repr(value)}"
                          ) from None
  if not math.isfinite(x):
    raise DataFormatError(path, line, f"field {field!r} must be finite, got {value!r}")
  return x


def _append(ev: Events, row: dict, path: str, line: int) -> None:
  for field in ("user", "item"):
    if field not in row:
      raise DataFormatError(path, line, f"missing field {field!r}")
  ev.users.append(_id(row["user"], path, line, "user"))
  ev.items.append(_id(row["item"], path, line, "item"))
  t = _number(row.get("time"), path, line, "time")
  if t is None:  # the service's log: when the event was received
    t = _number(row.get("received"), path, line, "received")
  ev.times.append(t)
  ev.kinds.append(str(row.get("event") or ""))
  ev.values.append(_number(row.get("value"), path, line, "value"))


def read_events_file(path: str) -> Events:
  """Events of a `.csv` or JSON-lines (`.jsonl`, `.json`, the feedback log) file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--events: no file at {path!r}")
  ev = Events([], [], [], [], [], source=path)
  with open(path, "rb") as f:
    data = f.read()
  if data.startswith(b"\xef\xbb\xbf"):
    data = data[3:]
  text = data.decode("utf-8", errors="strict") if data else ""
  if path.lower().endswith(".csv"):
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    for need in ("user", "item"):
      if need not in header:
        raise DataFormatError(path, 1, f"the header must name {need!r}; it has {header}")
    for row in reader:
      line = reader.line_num
      if None in row:
        raise DataFormatError(path, line, f"more fields than the header's {len(header)}")
      if all(v in (None, "") for v in row.values()):
        continue
      _append(ev, {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()},
              path, line)
    return ev
  for line, raw in enumerate(text.splitlines(), 1):
    if not raw.strip():
      continue
    try:
      row = json.loads(raw)
    except json.JSONDecodeError as e:
      if line == len(text.splitlines()) and not text.endswith("\n"):
        break  # a last line cut by a crash (the feedback log never acknowledged it)
      raise DataFormatError(path, line, f"not a JSON object ({e.msg})") from None
    if not isinstance(row, dict):
      raise DataFormatError(path, line, f"expected a JSON object, got {type(row).__name__}")
    _append(ev, row, path, line)
  return ev


def positive(events: Events, kinds: tuple[str, ...] = POSITIVE_EVENTS,
             min_rating: float | None = None) -> tuple[np.ndarray, dict]:
  """Which events count as interactions ([n] bool) and why the others do not: event
  types outside `kinds` ("" = a file without types: all count), ratings below
  `min_rating`."""
  n = len(events)
  keep = np.ones(n, bool)
  wrong_kind = low = 0
  for i in range(n):
    kind = events.kinds[i]
    if kind and kind not in kinds:
      keep[i], wrong_kind = False, wrong_kind + 1
    elif (min_rating is not None and events.values[i] is not None
          and events.values[i] < min_rating):
      keep[i], low = False, low + 1
  return keep, {"not_positive_event": wrong_kind, "below_min_rating": low}


def _as_int(raw) -> int | None:
  """`raw` as an int64 id when it is one (42, "42", "3.0"), else None."""
  if isinstance(raw, int):
    return raw
  try:
    return parse_int(str(raw).encode("utf-8", errors="replace"))
  except ValueError:
    return None


def _key(raw) -> str:
  """One spelling per new id ("42", 42 and "42.0" are the same id)."""
  i = _as_int(raw)
  return str(i) if i is not None else str(raw)


def _extend_ids(raw_ids: np.ndarray, new: list) -> np.ndarray:
  """`raw_ids` + `new`, keeping an integer dtype when every new id is an integer."""
  if not new:
    return raw_ids
  ints = [_as_int(x) for x in new]
  if np.issubdtype(raw_ids.dtype, np.integer) and all(i is not None for i in ints):
    return np.concatenate([raw_ids, np.asarray(ints, raw_ids.dtype)])
  return np.concatenate([raw_ids.astype(str), np.asarray([str(x) for x in new])])


def extend_dataset(data: SequenceDataset, events: Events, keep: np.ndarray | None = None,
                   dedup: str = "first") -> tuple[SequenceDataset, dict]:
  """`data` with the (kept) events appended to the users' histories, oldest first.

  Events are ordered by time (file order among equal times and for events without a
  time, which go after the user's history); an event older than the user's newest
  known interaction is still appended after it (counted as `out_of_order`). `dedup`
  follows `data.dedup`: 'first' drops an event for an item already in the history,
  'last' moves that item to its new place, 'none' keeps repeats. Existing users and
  items keep their indices; new ones are numbered after them (report: `new_users`,
  `new_items`, with their raw ids).
  """
  if dedup not in ("first", "last", "none"):
    raise ValueError(f"dedup={dedup!r}: expected 'first', 'last' or 'none'")
  n = len(events)
  keep = np.ones(n, bool) if keep is None else keep
  users, items = IdMap(data.user_ids), item_map(data.item_ids)
  new_users: dict = {}
  new_items: dict = {}
  times = [t for t in events.times]
  order = sorted((i for i in range(n) if keep[i]),
                 key=lambda i: (math.inf if times[i] is None else times[i], i))
  appended: dict[int, list[tuple[int, int]]] = {}  # user index -> [(item, time)]
  lengths = data.lengths
  last_time = {}
  out_of_order = 0
  for i in order:
    u = users.get(events.users[i])
    if u is None:
      key = _key(events.users[i])
      u = new_users.setdefault(key, (data.num_users + len(new_users), events.users[i]))[0]
    v = items.get(events.items[i])
    if v is None:
      key = _key(events.items[i])
      v = new_items.setdefault(key, (data.num_items + 1 + len(new_items), events.items[i]))[0]
    if u not in last_time:
      last_time[u] = (int(data.times[data.offsets[u + 1] - 1])
                      if u < data.num_users and lengths[u] else None)
    t = times[i]
    if t is None:
      t = last_time[u] if last_time[u] is not None else 0
    elif last_time[u] is not None and t < last_time[u]:
      out_of_order += 1
      t = last_time[u]
    t = int(round(t))
    last_time[u] = t
    appended.setdefault(u, []).append((v, t))

  num_users = data.num_users + len(new_users)
  seqs_items, seqs_times = [], []
  dropped = 0
  for u in range(num_users):
    old_i = data.sequence(u) if u < data.num_users else np.zeros(0, np.int32)
    old_t = (data.times[data.offsets[u]:data.offsets[u + 1]] if u < data.num_users
             else np.zeros(0, np.int64))
    add = appended.get(u)
    if not add:
      seqs_items.append(old_i)
      seqs_times.append(old_t)
      continue
    add_i = np.asarray([a for a, _ in add], np.int32)
    add_t = np.asarray([t for _, t in add], np.int64)
    if dedup == "first":
      seen = set(old_i.tolist())
      mask = []
      for a in add_i.tolist():
        mask.append(a not in seen)
        seen.add(a)
      mask = np.asarray(mask, bool)
      dropped += int((~mask).sum())
      add_i, add_t = add_i[mask], add_t[mask]
    elif dedup == "last":
      both_i, both_t = np.concatenate([old_i, add_i]), np.concatenate([old_t, add_t])
      _, last = np.unique(both_i[::-1], return_index=True)
      chosen = np.sort(both_i.size - 1 - last)
      dropped += int(both_i.size - chosen.size)
      seqs_items.append(both_i[chosen].astype(np.int32))
      seqs_times.append(both_t[chosen])
      continue
    seqs_items.append(np.concatenate([old_i, add_i]).astype(np.int32))
    seqs_times.append(np.concatenate([old_t, add_t]).astype(np.int64))

  new_lengths = np.asarray([s.size for s in seqs_items], np.int64)
  offsets = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
  user_ids = _extend_ids(data.user_ids, [raw for _, raw in new_users.values()])
  item_ids = _extend_ids(data.item_ids, [raw for _, raw in new_items.values()])
  report = {"events": n, "used": int(keep.sum()) - dropped, "dedup_dropped": dropped,
            "out_of_order": out_of_order, "new_users": len(new_users),
            "new_items": len(new_items),
            "new_user_ids": [python_value(r) for _, r in list(new_users.values())[:1000]],
            "new_item_ids": [python_value(r) for _, r in list(new_items.values())[:1000]]}
  out = SequenceDataset(offsets=offsets, items=np.concatenate(seqs_items).astype(np.int32),
                        times=np.concatenate(seqs_times).astype(np.int64), user_ids=user_ids,
                        item_ids=item_ids,
                        report={**data.report, "updates": list(data.report.get("updates", []))
                                + [{k: v for k, v in report.items() if not k.endswith("_ids")}]})
  return out, report
