"""Raw-format readers: each turns one interaction file on disk into `Interactions`."""

from __future__ import annotations

import csv
import io
import os
from typing import Callable

import numpy as np

from seqrec_jax.data.interactions import DataFormatError, Interactions
from seqrec_jax.data.table import read_table
from seqrec_jax.data.textio import (
    MAX_EXAMPLES, ON_ERROR, Problems, all_ints, line_text, numeric_tokens, parse_int, parses,
    read_bytes, read_fixed, split_lines, strip_header, why_not)

__all__ = [
    "ON_ERROR", "SOURCES", "read_item_titles", "read_movielens_100k", "read_movielens_csv",
    "read_movielens_dat", "read_s3rec_txt", "read_sasrec_txt", "read_source", "read_table",
]


def _ratings_interactions(cols: list[np.ndarray], report: dict, source: str) -> Interactions:
  users, items, ratings, times = cols
  return Interactions(users=users, items=items, timestamps=times,
                      ratings=ratings.astype(np.float32), source=source, report=report)


# ------------------------------------------------------------------------------ readers

def read_movielens_dat(path: str, *, on_error: str = "raise") -> Interactions:
  """ML-1M/10M `ratings.dat`: `UserID::MovieID::Rating::Timestamp`, plain or gzipped."""
  cols, _, report = read_fixed(path, read_bytes(path), sep=b"::", kinds="iifi",
                               on_error=on_error)
  return _ratings_interactions(cols, report, f"movielens:{path}")


def read_movielens_100k(path: str, *, on_error: str = "raise") -> Interactions:
  """ML-100K `u.data`: tab-separated `user item rating timestamp`."""
  cols, _, report = read_fixed(path, read_bytes(path), sep=None, kinds="iifi",
                               on_error=on_error)
  return _ratings_interactions(cols, report, f"ml100k:{path}")


_ML_CSV_HEADER = ["userId", "movieId", "rating", "timestamp"]


def read_movielens_csv(path: str, *, on_error: str = "raise") -> Interactions:
  """ml-20m / ml-latest `ratings.csv` with header `userId,movieId,rating,timestamp`."""
  (header,), body = strip_header(read_bytes(path), 1)  # (read_bytes drops a UTF-8 BOM)
  names = [h.strip().decode("latin-1") for h in header.split(b",")]
  if names != _ML_CSV_HEADER:
    raise DataFormatError(path, 1, f"expected header {','.join(_ML_CSV_HEADER)!r}: "
                          f"{line_text(header)!r}")
  cols, _, report = read_fixed(path, body, sep=b",", kinds="iifi", on_error=on_error,
                               first_line=2)
  return _ratings_interactions(cols, report, f"movielens_csv:{path}")


def read_sasrec_txt(path: str, *, on_error: str = "raise") -> Interactions:
  """SASRec `user item` per line, each user's lines in time order; time = line number."""
  cols, line_nos, report = read_fixed(path, read_bytes(path), sep=None, kinds="ii",
                                      on_error=on_error)
  users, items = cols
  return Interactions(users=users, items=items, timestamps=line_nos.astype(np.int64),
                      source=f"sasrec:{path}", report=report)


def _read_ragged(path: str, on_error: str) -> tuple[np.ndarray, np.ndarray, dict]:
  """Lines of integers: (tokens per line [L], -1 where malformed; the tokens of the other
  lines, concatenated [T] int64; report)."""
  problems = Problems(path, on_error)
  body = read_bytes(path)
  parsed = numeric_tokens(body, None)
  if parsed is not None and all_ints(parsed[0]):
    values, counts = parsed
    report = problems.report(lines=counts.size, blank=(counts == 0).sum())
    return counts, values.astype(np.int64), report
  lines = split_lines(body)
  counts_out = np.zeros(len(lines), np.int64)  # [L]
  tokens: list[int] = []
  for idx, raw in enumerate(lines):
    fields = raw.split()
    try:
      row = [parse_int(f) for f in fields]
    except ValueError:
      bad = next(f for f in fields if not parses(f, "i"))
      problems.add(idx + 1, f"token {line_text(bad)!r} {why_not(bad, 'i')}", raw)
      counts_out[idx] = -1
      continue
    counts_out[idx] = len(row)
    tokens.extend(row)
  report = problems.report(lines=len(lines), blank=(counts_out == 0).sum())
  return counts_out, np.array(tokens, dtype=np.int64), report


def read_s3rec_txt(path: str, time_path: str | None = None, *,
                   on_error: str = "raise") -> Interactions:
  """S3-Rec `user item1 item2 ...` per line, chronological.

  Timestamps are the running position in the file (order only), unless `time_path` names
  an aligned file `user t1 t2 ...` (same user and length on every line). A line with a
  user but no items is counted as `empty` and skipped.
  """
  counts, tokens, report = _read_ragged(path, on_error)
  if time_path:
    t_counts, t_tokens, t_report = _read_ragged(time_path, on_error)
    _check_aligned(path, counts, tokens, time_path, t_counts, t_tokens)
    report["malformed"] += t_report["malformed"]
    report["malformed_examples"] += [[f"{time_path}:{n}", s]
                                     for n, s in t_report["malformed_examples"]]
    report["malformed_examples"] = report["malformed_examples"][:MAX_EXAMPLES]
  starts = _line_starts(counts)  # [L]
  keep = counts > 1
  if time_path:
    keep &= t_counts > 1  # a line skipped as malformed in either file goes in both
  is_item = np.repeat(keep, np.maximum(counts, 0))  # [T]
  is_item[starts[keep]] = False  # the user id opening each line
  line_users = tokens[starts[keep]]  # [L_kept]
  lengths = counts[keep] - 1
  users = np.repeat(line_users, lengths)  # [N] int64
  items = tokens[is_item]  # [N] int64
  if time_path:
    t_is_item = np.repeat(keep, np.maximum(t_counts, 0))
    t_is_item[_line_starts(t_counts)[keep]] = False
    times = t_tokens[t_is_item]  # [N] int64
  else:
    times = np.arange(items.size, dtype=np.int64)  # [N] order only
  report["empty"] = int((counts == 1).sum())
  report["kept"] = int(keep.sum())  # lines (one per user sequence)
  return Interactions(users=users, items=items, timestamps=times, source=f"s3rec:{path}",
                      report=report)


def _line_starts(counts: np.ndarray) -> np.ndarray:
  """Index of each line's first token in the concatenated tokens ([L]; -1 counts as 0)."""
  sizes = np.maximum(counts, 0)
  return np.cumsum(sizes) - sizes


def _check_aligned(path: str, counts: np.ndarray, tokens: np.ndarray, time_path: str,
                   t_counts: np.ndarray, t_tokens: np.ndarray) -> None:
  """Raises DataFormatError at the first line where the time file disagrees with `path`."""
  if counts.size != t_counts.size:
    line = min(counts.size, t_counts.size) + 1
    raise DataFormatError(time_path, line, f"has {t_counts.size} lines but {path} has "
                          f"{counts.size}; the files must be aligned line by line")
  both = (counts >= 0) & (t_counts >= 0)  # lines malformed in either file are skipped
  has = both & (counts > 0) & (t_counts > 0)
  u = np.zeros(counts.size, np.int64)  # [L] user id of each line (0 where none)
  tu = np.zeros(counts.size, np.int64)
  u[has] = tokens[_line_starts(counts)[has]]
  tu[has] = t_tokens[_line_starts(t_counts)[has]]
  bad = np.flatnonzero(both & ((counts != t_counts) | (u != tu)))
  if bad.size:
    b = int(bad[0])
    raise DataFormatError(
        time_path, b + 1, f"not aligned with {path}:{b + 1}: user {tu[b]} with "
        f"{max(t_counts[b] - 1, 0)} times there, user {u[b]} with {max(counts[b] - 1, 0)} "
        "items in the item file")


# ---------------------------------------------------------------------------- metadata

def read_item_titles(path: str, *, on_error: str = "raise") -> dict:
  """Raw item id -> title, from `movies.dat` (`id::title::genres`, latin-1), ml-100k
  `u.item` (`id|title|...`, latin-1) or `movies.csv` (`movieId,title,genres`)."""
  problems = Problems(path, on_error)
  data = read_bytes(path)
  if str(path).lower().endswith(".csv"):
    rows = csv.reader(io.StringIO(data.decode("utf-8").lstrip("\ufeff"), newline=""))
    next(rows, None)  # header
    numbered = ((rows.line_num, r) for r in rows)
  else:
    text = data.decode("latin-1")
    first = text.split("\n", 1)[0]
    sep = "::" if "::" in first else "|"
    lines = text.split("\n")
    if lines and lines[-1] == "":
      lines.pop()
    numbered = ((i + 1, line.rstrip("\r").split(sep)) for i, line in enumerate(lines))
  titles: dict = {}
  for line_no, fields in numbered:
    if not fields or not "".join(fields).strip():
      continue
    if len(fields) < 2 or not fields[0].strip():
      problems.add(line_no, "expected an id and a title", "|".join(fields))
      continue
    key = fields[0].strip()
    titles[int(key) if key.lstrip("-").isdigit() else key] = fields[1]
  return titles


# --------------------------------------------------------------------------- dispatcher

SOURCES: dict[str, Callable[..., Interactions]] = {
    "movielens": read_movielens_dat,
    "ml100k": read_movielens_100k,
    "movielens_csv": read_movielens_csv,
    "sasrec": read_sasrec_txt,
    "s3rec": read_s3rec_txt,
    "table": read_table,
}


def read_source(fmt: str, path: str, **kw) -> Interactions:
  """Reads `path` with the reader registered as `fmt` (see SOURCES)."""
  if fmt not in SOURCES:
    raise ValueError(f"unknown data format {fmt!r}; valid formats: {sorted(SOURCES)}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{fmt} data file not found: {path}")
  inter = SOURCES[fmt](path, **kw)
  if len(inter) == 0:
    rep = inter.report
    if rep.get("malformed"):
      why = (f"all {rep['malformed']} data lines are malformed (skipped with on_error='skip'; "
             f"first: line {rep['malformed_examples'][0][0]})" if rep.get("malformed_examples")
             else f"all {rep['malformed']} data lines are malformed")
    else:
      headed = fmt in ("movielens_csv", "table")
      filled = rep.get("lines", 0) - rep.get("blank", 0)  # lines with something on them
      if filled > int(headed):
        why = "no line holds an interaction (every row misses a field or has a user but no items)"
      elif headed and filled:
        why = "the file holds no data lines (header only)"
      else:
        why = "the file holds no data lines (" + ("only blank lines)" if filled < rep.get(
            "lines", 0) else "empty)")
    raise DataFormatError(path, None, f"no interactions: {why}")
  return inter
