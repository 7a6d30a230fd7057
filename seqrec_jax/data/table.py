"""`read_table`: interactions from a CSV (with header) or Parquet file with named columns."""

from __future__ import annotations

import csv
import io

import numpy as np

from seqrec_jax.data.interactions import DataFormatError, Interactions
from seqrec_jax.data.textio import FLOAT32_MAX, Problems, parse_float, parse_int, read_bytes

_INT64_LIMIT = 2.0**63

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
    numbered = _csv_rows(path, rows)
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


def _csv_rows(path: str, rows):
  """(line number, fields) of a csv.reader; its errors (NUL bytes, an unclosed quote at
  the end, a huge field) as DataFormatError at the line."""
  while True:
    try:
      row = next(rows)
    except StopIteration:
      return
    except csv.Error as e:
      raise DataFormatError(path, rows.line_num or 1, f"unreadable CSV ({e})") from None
    yield rows.line_num, row


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


def _small_ints(col: np.ndarray) -> np.ndarray | None:
  """int64 when every value is an ASCII decimal integer of at most 18 digits (the common
  case, vectorised), else None (then each distinct value is parsed on its own)."""
  try:
    b = np.char.strip(np.asarray(col).astype("S"))
  except (UnicodeEncodeError, UnicodeDecodeError, ValueError, TypeError):
    return None
  rest = np.char.lstrip(b, b"+-")
  n = np.char.str_len(rest)
  if b.size and not (np.all(np.char.str_len(b) - n <= 1) and np.all(np.char.isdigit(rest))
                     and np.all((n >= 1) & (n <= 18))):
    return None
  return b.astype(np.int64)


def _to_ids(col: np.ndarray) -> np.ndarray:
  """Raw ids: int64 when every id is an integer in int64 range ('3', '3.0' and '03' are
  all 3), else str, with the integer ids written canonically ('3'), so one odd id never
  splits 3 and 3.0 into two users."""
  if col.dtype.kind in "iub":
    return col.astype(np.int64)
  fast = _small_ints(col)
  if fast is not None:
    return fast
  uniq, inverse = np.unique(col.astype(str), return_inverse=True)
  as_int: list = []
  for v in uniq:
    try:
      as_int.append(parse_int(v))
    except ValueError:
      as_int.append(None)
  if all(v is not None for v in as_int):
    return np.array(as_int, np.int64)[inverse].reshape(-1)
  canon = np.array([str(v) if v is not None else u.strip() for u, v in zip(uniq, as_int)],
                   dtype=str)
  return canon[inverse].reshape(-1)


def _to_times(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(int64 seconds [N], bad [N] bool): integers, numbers (floored) or ISO dates."""
  n = len(col)
  if col.dtype.kind == "M":
    return col.astype("datetime64[s]").astype(np.int64), np.zeros(n, bool)
  if col.dtype.kind in "iu":
    return col.astype(np.int64), np.zeros(n, bool)
  if col.dtype.kind == "f":
    try:
      return _floor_finite(col), np.zeros(n, bool)
    except ValueError:
      pass
  fast = _small_ints(col)
  if fast is not None:
    return fast, np.zeros(n, bool)
  uniq, inverse = np.unique(col.astype(str), return_inverse=True)
  conv = np.zeros(uniq.size, np.int64)
  ok = np.ones(uniq.size, bool)
  for i, v in enumerate(uniq):
    try:
      conv[i] = _one_time(v)
    except (ValueError, TypeError, OverflowError):
      ok[i] = False
  out = conv[inverse].reshape(-1)
  bad = ~ok[inverse].reshape(-1)
  return out, bad


def _one_time(v: str) -> int:
  """An integer (int64), a finite number (floored, inside int64) or an ISO date/time
  ('2020-01-02', '2020-01-02T03:04:05'; seconds since the epoch)."""
  v = v.strip()
  try:
    return parse_int(v)
  except ValueError:
    pass
  try:
    return int(_floor_finite(np.array([parse_float(v)]))[0])
  except ValueError:
    pass
  if not v[:4].isdigit() or len(v) < 10 or v[4] != "-":
    raise ValueError(f"{v!r} is not a time")
  return int(np.datetime64(v, "s").astype(np.int64))


def _floor_finite(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if not (np.isfinite(x).all() and (np.abs(x) < _INT64_LIMIT).all()):
    raise ValueError("non-finite or outside the int64 range")
  return np.floor(x).astype(np.int64)


def _to_floats(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(float64 [N], bad [N] bool): finite numbers inside the float32 range."""
  if col.dtype.kind in "iuf":
    out = col.astype(np.float64)
    return out, ~(np.abs(out) <= FLOAT32_MAX)
  uniq, inverse = np.unique(col.astype(str), return_inverse=True)
  conv = np.zeros(uniq.size)
  ok = np.ones(uniq.size, bool)
  for i, v in enumerate(uniq):
    try:
      conv[i] = parse_float(v)
    except (ValueError, TypeError):
      ok[i] = False
  return conv[inverse].reshape(-1), ~ok[inverse].reshape(-1)
