"""Line-level parsing shared by the readers: bytes in, numeric columns and error counts out."""

from __future__ import annotations

import gzip
import re
import zlib

import numpy as np

from seqrec_jax.data.interactions import DataFormatError

ON_ERROR = ("raise", "skip")
MAX_EXAMPLES = 5  # malformed lines kept verbatim in report["malformed_examples"]
_MAX_TEXT = 120  # characters of a bad line quoted in messages
_GZIP_MAGIC = b"\x1f\x8b"
_EXACT_FLOAT_INT = 2**53  # ints beyond this don't survive the float64 fast path
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 'f' fields (ratings) are kept as float32


_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
              b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}
_INT64_MAX = 2**63 - 1
_INT_RE = re.compile(rb"[+-]?[0-9]+")
_FLOAT_RE = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def read_bytes(path: str) -> bytes:
  """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name),
  without a UTF-8 byte-order mark. A truncated or damaged gzip file, or a UTF-16/32 one
  (byte-order mark), raises DataFormatError naming the file."""
  with open(path, "rb") as f:
    data = f.read()
  if data[:2] == _GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
      raise DataFormatError(path, None, f"truncated or damaged gzip file ({type(e).__name__}: "
                            f"{e}); download or copy it again") from None
  for bom, name in _WIDE_BOMS.items():
    if data.startswith(bom):
      raise DataFormatError(path, 1, f"the file is {name}-encoded (byte-order mark); save it "
                            "as UTF-8 or ASCII")
  return data[3:] if data.startswith(_UTF8_BOM) else data


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
  if sep:  # fields are split on `sep` only: whitespace inside a line or empty fields
    # (leading, trailing or doubled separators) go to the line-by-line path
    if b" " in body or b"\t" in body or b"\x0b" in body or b"\x0c" in body:
      return None
    n_sep = body.count(sep)
    body = body.replace(sep, b" ")
  if body.count(b"\r") != body.count(b"\r\n") + body.endswith(b"\r"):
    return None  # a carriage return inside a line
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
  if sep and n_sep != int(np.maximum(counts - 1, 0).sum()):
    return None  # an empty field somewhere
  return values, counts


def all_ints(x: np.ndarray) -> bool:
  return bool(np.all(x == np.floor(x)) and np.all(np.abs(x) < _EXACT_FLOAT_INT))


def parse_int(tok: bytes) -> int:
  """An int64 from a decimal integer ('-12'), or an integral number below 2**53 ('3.0',
  '1e3') as the fast path reads them; ValueError for anything else (words, '1_000',
  hex, fractions, values outside int64)."""
  tok = tok.strip() if isinstance(tok, bytes) else str(tok).strip().encode("latin-1")
  if _INT_RE.fullmatch(tok):
    v = int(tok)
    if -_INT64_MAX - 1 <= v <= _INT64_MAX:
      return v
    raise ValueError("is outside the int64 range")
  if _FLOAT_RE.fullmatch(tok):
    f = float(tok)
    if f.is_integer() and abs(f) < _EXACT_FLOAT_INT:
      return int(f)
  raise ValueError("is not an integer")


def parse_float(tok: bytes) -> float:
  """A finite float from a decimal literal ('4', '3.5', '1e-3'); ValueError otherwise."""
  tok = tok.strip() if isinstance(tok, bytes) else str(tok).strip().encode("latin-1")
  if not _FLOAT_RE.fullmatch(tok):
    raise ValueError("is not a number")
  f = float(tok)
  if not np.isfinite(f):
    raise ValueError("is not a finite number")
  if abs(f) > FLOAT32_MAX:
    raise ValueError("is outside the float32 range")
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
    float_cols = [j for j, k in enumerate(kinds) if k == "f"]
    if all_ints(rows[:, int_cols]) and np.all(np.abs(rows[:, float_cols]) <= FLOAT32_MAX):
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
      problems.add(line_no, f"field {bad_j + 1} ({line_text(fields[bad_j])!r}) "
                   f"{why_not(fields[bad_j], kinds[bad_j])}", raw)
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


def why_not(tok: bytes, kind: str) -> str:
  """Why `tok` is not a valid field of `kind` ('is not an integer', ...)."""
  try:
    parse_int(tok) if kind == "i" else parse_float(tok)
  except ValueError as e:
    return str(e)
  return "is valid"


def parses(tok: bytes, kind: str) -> bool:
  try:
    parse_int(tok) if kind == "i" else parse_float(tok)
    return True
  except ValueError:
    return False
