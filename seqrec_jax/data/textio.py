"""Line-level parsing shared by the readers: bytes in, numeric columns and error counts out."""

from __future__ import annotations

import gzip

import numpy as np

from seqrec_jax.data.interactions import DataFormatError

ON_ERROR = ("raise", "skip")
MAX_EXAMPLES = 5  # malformed lines kept verbatim in report["malformed_examples"]
_MAX_TEXT = 120  # characters of a bad line quoted in messages
_GZIP_MAGIC = b"\x1f\x8b"
_EXACT_FLOAT_INT = 2**53  # ints beyond this don't survive the float64 fast path


def read_bytes(path: str) -> bytes:
  """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
  with open(path, "rb") as f:
    data = f.read()
  if data[:2] == _GZIP_MAGIC:
    data = gzip.decompress(data)
  return data


def line_text(line: bytes | str) -> str:
  """A line for messages: decoded as latin-1 (never fails), no line end, truncated."""
  s = line.decode("latin-1") if isinstance(line, bytes) else line
  s = s.rstrip("\r\n")
  return s if len(s) <= _MAX_TEXT else s[:_MAX_TEXT] + "..."


def split_lines(body: bytes) -> list[bytes]:
  """Physical lines; a final line end does not start another line."""
  lines = body.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  return lines


class Problems:
  """Malformed lines: raised at once (on_error='raise') or counted with a few examples."""

  def __init__(self, path: str, on_error: str):
    if on_error not in ON_ERROR:
      raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    self.path, self.on_error = str(path), on_error
    self.count = 0
    self.examples: list[list] = []

  def add(self, line_no: int, what: str, line: bytes | str) -> None:
    if self.on_error == "raise":
      raise DataFormatError(self.path, int(line_no), f"{what}: {line_text(line)!r}")
    self.count += 1
    if len(self.examples) < MAX_EXAMPLES:
      self.examples.append([int(line_no), line_text(line)])

  def report(self, **counts: int) -> dict:
    out = {k: int(v) for k, v in counts.items()}
    out["malformed"] = self.count
    out["malformed_examples"] = self.examples
    return out


def numeric_tokens(body: bytes, sep: bytes | None) -> tuple[np.ndarray, np.ndarray] | None:
  """Fast path: (all numbers in `body` [T] float64, numbers per line [L] int64).

  One `np.fromstring` call parses the whole file: every line end becomes a ' nan' marker,
  so the markers' positions give the per-line field counts. Returns None when any token
  is not a finite number (the caller then scans line by line to say where).
  """
  if sep:
    body = body.replace(sep, b" ")
  body = body.replace(b"\r", b" ")
  if body and not body.endswith(b"\n"):
    body += b"\n"
  n_lines = body.count(b"\n")
  if n_lines == 0:
    return np.zeros(0), np.zeros(0, np.int64)
  try:
    marked = body.replace(b"\n", b" nan\n")
    parsed = np.fromstring(marked, dtype=np.float64, sep=" ")  # [T + L] float64
  except ValueError:  # a token that is not a number
    return None
  is_marker = np.isnan(parsed)
  ends = np.flatnonzero(is_marker)  # [L]
  if ends.size != n_lines:  # a literal 'nan' in the data
    return None
  values = parsed[~is_marker]  # [T]
  if not np.isfinite(values).all():
    return None
  counts = np.diff(ends, prepend=-1) - 1  # [L] int64
  return values, counts


def all_ints(x: np.ndarray) -> bool:
  return bool(np.all(x == np.floor(x)) and np.all(np.abs(x) < _EXACT_FLOAT_INT))


def parse_int(tok: bytes) -> int:
  try:
    return int(tok)
  except ValueError:
    f = float(tok)  # accepts '3.0' / '1e3' like the fast path; raises on words
    if not f.is_integer():
      raise
    return int(f)


def parse_float(tok: bytes) -> float:
  f = float(tok)
  if not np.isfinite(f):
    raise ValueError(tok)
  return f


def strip_header(data: bytes, n: int) -> tuple[list[bytes], bytes]:
  """First `n` lines and the rest of the file."""
  header = []
  for _ in range(n):
    cut = data.find(b"\n")
    line, data = (data, b"") if cut < 0 else (data[:cut], data[cut + 1:])
    header.append(line.rstrip(b"\r"))
  return header, data


def read_fixed(path: str, body: bytes, *, sep: bytes | None, kinds: str, on_error: str,
               first_line: int = 1) -> tuple[list[np.ndarray], np.ndarray, dict]:
  """Lines of `len(kinds)` numeric fields ('i' int, 'f' float): columns, line numbers, report.

  `first_line` is the 1-based file line number of `body`'s first line (after a header).
  """
  problems = Problems(path, on_error)
  ncols = len(kinds)
  sep_name = "whitespace" if sep is None else repr(sep.decode())
  parsed = numeric_tokens(body, sep)
  if parsed is not None:
    values, counts = parsed
    good = counts == ncols  # [L]
    blank = counts == 0
    starts = np.cumsum(counts) - counts
    rows = values[starts[good][:, None] + np.arange(ncols)]  # [N, ncols] float64
    int_cols = [j for j, k in enumerate(kinds) if k == "i"]
    if all_ints(rows[:, int_cols]):
      bad = np.flatnonzero(~good & ~blank)
      if bad.size:
        lines = split_lines(body)
        for b in bad[:MAX_EXAMPLES]:
          problems.add(first_line + b, f"expected {ncols} fields separated by {sep_name}, "
                       f"got {counts[b]}", lines[b])
        problems.count += bad.size - min(bad.size, MAX_EXAMPLES)
      cols = [rows[:, j].astype(np.int64 if k == "i" else np.float64)
              for j, k in enumerate(kinds)]
      line_nos = first_line + np.flatnonzero(good)  # [N] int64
      report = problems.report(lines=first_line - 1 + counts.size, blank=blank.sum(),
                               kept=good.sum())
      return cols, line_nos, report

  # Slow path: some token is not a number; scan line by line to find and report it.
  lines = split_lines(body)
  rows_out: list[tuple] = []
  line_out: list[int] = []
  blank_count = 0
  for idx, raw in enumerate(lines):
    line_no = first_line + idx
    fields = raw.split(sep) if sep else raw.split()
    fields = [f.strip() for f in fields]
    if not raw.strip():
      blank_count += 1
      continue
    if len(fields) != ncols:
      problems.add(line_no, f"expected {ncols} fields separated by {sep_name}, "
                   f"got {len(fields)}", raw)
      continue
    try:
      row = tuple(parse_int(f) if k == "i" else parse_float(f) for f, k in zip(fields, kinds))
    except ValueError:
      bad_j = next(j for j, (f, k) in enumerate(zip(fields, kinds))
                   if not parses(f, k))
      kind = "an integer" if kinds[bad_j] == "i" else "a number"
      problems.add(line_no, f"field {bad_j + 1} ({line_text(fields[bad_j])!r}) is not {kind}",
                   raw)
      continue
    rows_out.append(row)
    line_out.append(line_no)
  cols = []
  for j, k in enumerate(kinds):
    col = [r[j] for r in rows_out]
    cols.append(np.array(col, dtype=np.int64 if k == "i" else np.float64))  # [N]
  report = problems.report(lines=first_line - 1 + len(lines), blank=blank_count,
                           kept=len(rows_out))
  return cols, np.array(line_out, dtype=np.int64), report


def parses(tok: bytes, kind: str) -> bool:
  try:
    parse_int(tok) if kind == "i" else parse_float(tok)
    return True
  except ValueError:
    return False
