"""`read_table`: interactions from a CSV (with header) or Parquet file with named columns."""

from __future__ import annotations

import csv
import io

import numpy as np

from seqrec_jax.data.interactions import DataFormatError, Interactions
from seqrec_jax.data.textio import Problems, all_ints, parse_float, read_bytes

def read_table(path: str, *, user_col: str, item_col: str, time_col: str,
               rating_col: str | None = None, sep: str = ",", on_error: str = "raise",
               encoding: str = "utf-8") -> Interactions:
  """A CSV with a header (or Parquet, by extension `.parquet`/`.pq`) with named columns.

  Ids stay int64 when every value is an integer, else str. Times may be integers, numbers
  (floored) or ISO dates (seconds since the epoch). Rows with an empty field in a used
  column are dropped and counted as `missing` (whatever `on_error` says).
  """
  wanted = [user_col, item_col, time_col] + ([rating_col] if rating_col else [])
  problems = Problems(path, on_error)
  if str(path).lower().endswith((".parquet", ".pq")):
    raw, line_nos, counts, bad_lines = _parquet_columns(path, wanted)
  else:
    raw, line_nos, counts, bad_lines = _csv_columns(path, wanted, sep, encoding)
  times, bad_t = _to_times(raw[2])
  ratings, bad_r = _to_floats(raw[3]) if rating_col else (None, np.zeros(len(times), bool))
  for b in np.flatnonzero(bad_t | bad_r):
    col, val = (time_col, raw[2][b]) if bad_t[b] else (rating_col, raw[3][b])
    what = "time" if bad_t[b] else "number"
    bad_lines.append((int(line_nos[b]), f"column {col!r} value {str(val)!r} is not a {what}",
                      sep.join(str(r[b]) for r in raw)))
  for line_no, what, text in sorted(bad_lines):  # 'raise' reports the first bad line
    problems.add(line_no, what, text)
  ok = ~(bad_t | bad_r)  # [N]
  return Interactions(
      users=_to_ids(raw[0][ok]), items=_to_ids(raw[1][ok]), timestamps=times[ok],
      ratings=None if ratings is None else ratings[ok].astype(np.float32),
      source=f"table:{path}", report=problems.report(**counts, kept=ok.sum()))


_Columns = tuple[list[np.ndarray], np.ndarray, dict, list[tuple[int, str, str]]]


def _csv_columns(path: str, wanted: list[str], sep: str, encoding: str) -> _Columns:
  """(wanted columns [N] str each, their line numbers [N], counts, malformed lines)."""
  data = read_bytes(path)
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    raise DataFormatError(path, data.count(b"\n", 0, e.start) + 1,
                          f"not valid {encoding}: {e.reason}") from None
  text = text.lstrip("\ufeff")
  if len(sep) == 1:
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    numbered = ((rows.line_num, r) for r in rows)
  else:
    numbered = ((i + 1, line.rstrip("\r").split(sep)) for i, line in
                enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")))
  blank = missing = 0
  header: list[str] | None = None
  header_line = 1
  cols: list[list[str]] = [[] for _ in wanted]
  line_out: list[int] = []
  bad_lines: list[tuple[int, str, str]] = []
  n_lines = 0
  for line_no, row in numbered:
    n_lines = line_no
    if not row or all(not f.strip() for f in row):
      blank += 1
      continue
    if header is None:
      header, header_line = [h.strip() for h in row], line_no
      for c in wanted:
        if c not in header:
          raise DataFormatError(path, header_line, f"no column {c!r}; available columns: "
                                f"{header}")
      idx = [header.index(c) for c in wanted]
      continue
    if len(row) != len(header):
      bad_lines.append((line_no, f"expected {len(header)} fields, got {len(row)}",
                        sep.join(row)))
      continue
    fields = [row[j].strip() for j in idx]
    if not all(fields):
      missing += 1
      continue
    for c, f in zip(cols, fields):
      c.append(f)
    line_out.append(line_no)
  if header is None:
    raise DataFormatError(path, None, "empty file: no header line")
  arrays = [np.array(c, dtype=str) for c in cols]  # [N] str each
  counts = {"lines": n_lines, "blank": blank, "missing": missing}
  return arrays, np.array(line_out, np.int64), counts, bad_lines


def _parquet_columns(path: str, wanted: list[str]) -> _Columns:
  """Columns of a Parquet file via pyarrow (or pandas), rows with nulls dropped."""
  try:
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    table = pq.read_table(path)
    available = list(table.column_names)
    get = lambda c: table.column(c).to_numpy(zero_copy_only=False)
  except ImportError:
    try:
      import pandas as pd  # pylint: disable=import-outside-toplevel
    except ImportError:
      raise ImportError(f"reading Parquet ({path}) needs the package 'pyarrow' (or 'pandas' "
                        "with a Parquet engine); neither is installed") from None
    frame = pd.read_parquet(path)
    available = [str(c) for c in frame.columns]
    get = lambda c: frame[c].to_numpy()
  for c in wanted:
    if c not in available:
      raise DataFormatError(path, None, f"no column {c!r}; available columns: {available}")
  cols = [np.asarray(get(c)) for c in wanted]
  n = len(cols[0])
  present = np.ones(n, bool)
  for c in cols:
    present &= ~_is_missing(c)
  arrays = [c[present] for c in cols]
  line_nos = np.flatnonzero(present) + 1  # row numbers stand in for line numbers
  return arrays, line_nos, {"lines": n, "blank": 0, "missing": int(n - present.sum())}, []


def _is_missing(col: np.ndarray) -> np.ndarray:
  if col.dtype.kind == "f":
    return np.isnan(col)
  if col.dtype.kind == "M":
    return np.isnat(col)
  if col.dtype.kind in "OUS":
    return np.array([v is None or (isinstance(v, float) and v != v) or str(v).strip() == ""
                     for v in col], bool)
  return np.zeros(col.shape, bool)


def _to_ids(col: np.ndarray) -> np.ndarray:
  """int64 when every id is an integer, else str."""
  if col.dtype.kind in "iub":
    return col.astype(np.int64)
  if col.dtype.kind == "f":
    return col.astype(np.int64) if all_ints(col) else col.astype(str)
  col = col.astype(str)
  try:
    return col.astype(np.int64)
  except (ValueError, OverflowError):
    return col


def _to_times(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(int64 seconds [N], bad [N] bool): integers, numbers (floored) or ISO dates."""
  n = len(col)
  if col.dtype.kind == "M":
    return col.astype("datetime64[s]").astype(np.int64), np.zeros(n, bool)
  if col.dtype.kind in "iu":
    return col.astype(np.int64), np.zeros(n, bool)
  for convert in (lambda c: c.astype(np.int64),
                  lambda c: _floor_finite(c.astype(np.float64)),
                  lambda c: c.astype("datetime64[s]").astype(np.int64)):
    try:
      return convert(col), np.zeros(n, bool)
    except (ValueError, TypeError, OverflowError):
      pass
  out = np.zeros(n, np.int64)
  bad = np.zeros(n, bool)
  for i, v in enumerate(col):
    try:
      out[i] = _floor_finite(np.array([float(v)]))[0]
    except (ValueError, TypeError, OverflowError):
      try:
        out[i] = np.datetime64(str(v), "s").astype(np.int64)
      except ValueError:
        bad[i] = True
  return out, bad


def _floor_finite(x: np.ndarray) -> np.ndarray:
  if not np.isfinite(x).all():
    raise ValueError("non-finite")
  return np.floor(x).astype(np.int64)


def _to_floats(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(float64 [N], bad [N] bool)."""
  try:
    out = col.astype(np.float64)
    return out, ~np.isfinite(out)
  except (ValueError, TypeError):
    out = np.zeros(len(col))
    bad = np.zeros(len(col), bool)
    for i, v in enumerate(col):
      try:
        out[i] = parse_float(v)
      except (ValueError, TypeError):
        bad[i] = True
    return out, bad
