"""Property-based fuzzing of every raw-format reader against a plain reference parser.

Each generated file (field counts, delimiters, line ends, BOMs, huge / odd / malformed
numbers, blank and duplicated lines, empty and header-only files, gzip and truncated
gzip) must either parse to exactly what the reference parser below gives, or stop with
a DataFormatError that names the file (and the line, where there is one). With
on_error='skip' the reader keeps exactly the lines the reference accepts and counts the
others as malformed. Never another exception, never a hang (each test is bounded).

The fast default suite runs FAST examples per reader; `pytest -m reliability` runs
MANY (SEQREC_FUZZ_EXAMPLES overrides it). Generation is derandomized: reproducible.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import math
import os
import re
import signal
import string
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec_jax.data import sources
from seqrec_jax.data.interactions import DataFormatError

FAST = 40
MANY = int(os.environ.get("SEQREC_FUZZ_EXAMPLES", "2000"))
TIME_LIMIT_S = 600  # per test, whatever the example count: never a hang

# ------------------------------------------------------------------ the reference parser
# The format rules, written out plainly (docs/data_formats.md, docs/reliability.md):
# a field is stripped of ASCII whitespace; an int field is a decimal integer in the
# int64 range, or a decimal number with an integral value below 2**53 ("3.0", "1e3");
# a float field is a finite decimal number; lines are split on "\n" (a final one ends
# the last line), a line of whitespace only is blank; a UTF-8 byte-order mark opens
# nothing. These are regular expressions and Python ints, no numpy.

WS = b" \t\r\x0b\x0c"
INT = re.compile(rb"[+-]?[0-9]+")
NUM = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def ref_int(tok: bytes) -> int | None:
  tok = tok.strip(WS)
  if INT.fullmatch(tok):
    v = int(tok)
    return v if -2**63 <= v < 2**63 else None
  if NUM.fullmatch(tok):
    f = float(tok)
    if math.isfinite(f) and f == int(f) and abs(f) < 2**53:
      return int(f)
  return None


def ref_float(tok: bytes) -> float | None:
  """A rating: a finite decimal number inside the float32 range (ratings are float32)."""
  tok = tok.strip(WS)
  if not NUM.fullmatch(tok):
    return None
  f = float(tok)
  return f if math.isfinite(f) and abs(f) <= 3.4028234663852886e38 else None


def ref_lines(body: bytes) -> list[bytes]:
  lines = body.split(b"\n")
  if lines[-1] == b"":
    lines.pop()
  return lines


class Rejected(Exception):
  def __init__(self, line):
    super().__init__(line)
    self.line = line


def ref_fixed(body: bytes, sep: bytes | None, kinds: str, first_line: int, skip: bool):
  """(columns, line numbers, rejected count) or raises Rejected(first bad line)."""
  rows, nos, bad = [], [], 0
  for i, raw in enumerate(ref_lines(body)):
    if not raw.strip(WS + b"\n"):
      continue
    fields = raw.split(sep) if sep else raw.split()
    vals = None
    if len(fields) == len(kinds):
      vals = [ref_int(f) if k == "i" else ref_float(f) for f, k in zip(fields, kinds)]
      if any(v is None for v in vals):
        vals = None
    if vals is None:
      if not skip:
        raise Rejected(first_line + i)
      bad += 1
      continue
    rows.append(vals)
    nos.append(first_line + i)
  cols = [[r[j] for r in rows] for j in range(len(kinds))]
  return cols, nos, bad


# ------------------------------------------------------------------ generated content

@functools.lru_cache(maxsize=None)
def _int_token(dirty: bool = True):
  if not dirty:  # valid ints, odd but legal spellings
    n = st.one_of(st.integers(0, 50), st.integers(-2**63, 2**63 - 1),
                  st.sampled_from([2**53 + 1, 2**63 - 1, -2**63]))
    return st.one_of(st.builds(lambda v: str(v).encode(), n),
                     st.builds(lambda v, f: f.format(v).encode(), st.integers(0, 999),
                               st.sampled_from(["+{}", "00{}", "{}.0", "{}e0", "{}."])))
  n = st.one_of(st.integers(0, 50), st.integers(-2**70, 2**70),
                st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64]))
  fmt = st.sampled_from(["{}", "+{}", "00{}", "{}.0", " {} ", "{}e0", "{}.", "\t{}"])
  good = st.builds(lambda v, f: f.format(v).encode(), n, fmt)
  junk = st.sampled_from([b"", b"abc", b"nan", b"inf", b"-inf", b"0x1f", b"1_000", b"1.5", b"--1",
                          b"1e", b".", b"-", b"1e400", "\u0663".encode(), b"3:", b"1,2", b"\xff",
                          b"NaN", b"1 2", b"+-3", b"4.0e2", b".5e1", b"1e-1", b"\x00"])
  return st.one_of(good, good, good, junk)


@functools.lru_cache(maxsize=None)
def _float_token(dirty: bool = True):
  good = st.builds(lambda v: repr(v).encode(), st.floats(-1e6, 1e6, allow_nan=False))
  if not dirty:
    return st.one_of(good, _int_token(False))
  odd = st.builds(lambda v: repr(v).encode(), st.floats(allow_nan=True, allow_infinity=True))
  return st.one_of(good, good, _int_token(), odd)


_WRONG_SEP = st.sampled_from([b"\t", b",", b":", b" :: ", b"::", b" ", b";", b"|", b"::::"])
_BLANK = st.sampled_from([b"", b" ", b"\t", b"\r"])
_KIND = {True: st.sampled_from(["good"] * 6 + ["count", "sep", "blank", "empty_field"]),
         False: st.sampled_from(["good"] * 6 + ["blank"])}
_WS_SEP = st.sampled_from([b" ", b"\t", b"  ", b" \t"])


@functools.lru_cache(maxsize=None)
def _line(sep: bytes | None, kinds: str, dirty: bool = True):
  join_sep = st.just(sep) if sep else _WS_SEP
  counts = st.integers(0, len(kinds) + 2).filter(lambda x: x != len(kinds))
  position = st.integers(0, len(kinds) - 1)

  @st.composite
  def line(draw):
    kind = draw(_KIND[dirty])
    if kind == "blank":
      return draw(_BLANK)
    n = draw(counts) if kind == "count" else len(kinds)
    toks = [draw(_int_token(dirty) if (kinds[j % len(kinds)] == "i") else _float_token(dirty))
            for j in range(n)]
    s = draw(_WRONG_SEP) if kind == "sep" else draw(join_sep)
    if kind == "empty_field" and toks:
      toks[draw(position) % len(toks)] = b""
    return s.join(toks)
  return line()


@st.composite
def _file(draw, sep, kinds, header: bytes | None = None):
  dirty = draw(st.booleans())
  lines = draw(_lines(sep, kinds, dirty))
  if lines and draw(st.booleans()):  # duplicated rows
    lines += [lines[i % len(lines)] for i in draw(_DUPS)]
  if header is not None and draw(st.integers(0, 9)) > 0:
    lines = [header if draw(st.integers(0, 5)) else b"userId,movieId,rating"] + lines
  end = draw(_END)
  body = end.join(lines) + (end if lines and draw(st.booleans()) else b"")
  return draw(_BOM) + body


_DUPS = st.lists(st.integers(0, 100), max_size=5)
_END = st.sampled_from([b"\n", b"\r\n"])
_BOM = st.sampled_from([b"", b"", b"", b"\xef\xbb\xbf"])


@functools.lru_cache(maxsize=None)
def _lines(sep, kinds, dirty):
  return st.lists(_line(sep, kinds, dirty), min_size=0, max_size=25)


def _wrap(draw, data: bytes) -> tuple[bytes, str]:
  """How the file is stored: plain, gzip, truncated gzip or UTF-16 (BOM)."""
  how = draw(st.sampled_from(["plain"] * 5 + ["gzip", "gzip", "truncated", "utf16"]))
  if how == "gzip":
    return gzip.compress(data, mtime=0), how
  if how == "truncated":
    z = gzip.compress(data, mtime=0)
    return z[:draw(st.integers(2, len(z) - 1))], how
  if how == "utf16":
    return b"\xff\xfe" + data.decode("latin-1").encode("utf-16-le"), how
  return data, how


# ------------------------------------------------------------------ harness

_COUNTS: dict[str, int] = {}


def _record(name: str) -> None:
  _COUNTS[name] = _COUNTS.get(name, 0) + 1


def _report_counts():
  out = os.environ.get("SEQREC_RELIABILITY_REPORT")
  if out:
    with open(out, "a") as f:
      f.write(json.dumps({"fuzz": dict(_COUNTS)}) + "\n")


@pytest.fixture(autouse=True)
def _time_bound():
  """Each fuzz test is bounded in wall time (a hang fails it, it never blocks CI)."""
  def boom(signum, frame):
    raise TimeoutError(f"fuzz test exceeded {TIME_LIMIT_S}s")
  old = signal.signal(signal.SIGALRM, boom)
  signal.alarm(TIME_LIMIT_S)
  yield
  signal.alarm(0)
  signal.signal(signal.SIGALRM, old)
  _report_counts()


_SCRATCH: dict = {}


def _scratch(factory):
  """One folder for every example of a session (each example overwrites its file)."""
  if "dir" not in _SCRATCH:
    _SCRATCH["dir"] = factory.mktemp("fuzz")
  return _SCRATCH["dir"]


def _settings(n):
  return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))


_FIXED = {  # format: (sep, kinds, header)
    "movielens": (b"::", "iifi", None),
    "ml100k": (None, "iifi", None),
    "movielens_csv": (b",", "iifi", b"userId,movieId,rating,timestamp"),
    "sasrec": (None, "ii", None),
}


def _expect_error(call, path, line=None):
  with pytest.raises(DataFormatError) as info:
    call()
  msg = str(info.value)
  assert msg.startswith(str(path)), msg
  if line is not None:
    assert info.value.line == line, (msg, line)
  return info.value


def _check_fixed(fmt, raw, how, skip, tmp_path):
  sep, kinds, header = _FIXED[fmt]
  path = tmp_path / f"data.{fmt}"
  path.write_bytes(raw)
  call = lambda: sources.read_source(fmt, str(path), on_error="skip" if skip else "raise")
  if how == "truncated":
    _expect_error(call, path, None)
    return "truncated gzip"
  if how == "utf16":
    _expect_error(call, path, 1)
    return "utf-16"
  text = gzip.decompress(raw) if how == "gzip" else raw
  if text.startswith(b"\xef\xbb\xbf"):
    text = text[3:]
  first = 1
  if header is not None:
    cut = text.find(b"\n")
    head, text = (text, b"") if cut < 0 else (text[:cut], text[cut + 1:])
    names = [h.strip().decode("latin-1") for h in head.rstrip(b"\r").split(b",")]
    if names != header.decode().split(","):
      _expect_error(call, path, 1)
      return "bad header"
    first = 2
  try:
    cols, nos, bad = ref_fixed(text, sep, kinds, first, skip)
  except Rejected as r:
    _expect_error(call, path, r.line)
    return "rejected line"
  if not nos:
    _expect_error(call, path, None)  # no interactions (empty, header-only, all skipped)
    return "no interactions"
  inter = call()
  assert inter.report["malformed"] == bad
  assert inter.users.dtype == np.int64 and inter.users.tolist() == cols[0]
  assert inter.items.tolist() == cols[1]
  if kinds == "iifi":
    assert inter.timestamps.tolist() == cols[3]
    np.testing.assert_array_equal(inter.ratings, np.array(cols[2], np.float32))
  else:
    assert inter.timestamps.tolist() == nos
  return "parsed"


OUTCOMES = ("parsed", "rejected line", "no interactions", "truncated gzip", "utf-16")


def _covered(reader, extra=()):
  """The many-example run generated every kind of outcome for `reader`."""
  assert _COUNTS.get(reader, 0) >= MANY * 0.9
  for outcome in OUTCOMES + tuple(extra):
    assert _COUNTS.get(f"{reader}:{outcome}", 0) > 0, (reader, outcome, _COUNTS)


def _fixed_test(fmt, n):
  sep, kinds, header = _FIXED[fmt]

  @_settings(n)
  @given(data=st.data())
  def run(tmp_path_factory, data):
    raw = data.draw(_file(sep, kinds, header))
    raw, how = _wrap(data.draw, raw)
    skip = data.draw(st.booleans())
    outcome = _check_fixed(fmt, raw, how, skip, _scratch(tmp_path_factory))
    _record(f"{fmt}:{outcome}")
    _record(fmt)
  return run


@pytest.mark.parametrize("fmt", sorted(_FIXED))
def test_fixed_readers_fast(fmt, tmp_path_factory):
  _fixed_test(fmt, FAST)(tmp_path_factory)


@pytest.mark.reliability
@pytest.mark.parametrize("fmt", sorted(_FIXED))
def test_fixed_readers_many(fmt, tmp_path_factory):
  _fixed_test(fmt, MANY)(tmp_path_factory)
  _covered(fmt, ["bad header"] if _FIXED[fmt][2] else [])


# ---- S3-Rec: `user item1 item2 ...` per line

@st.composite
def _s3rec_file(draw):
  lines = []
  for _ in range(draw(st.integers(0, 20))):
    kind = draw(st.sampled_from(["good"] * 5 + ["user_only", "blank", "junk"]))
    n = {"good": draw(st.integers(2, 8)), "user_only": 1, "blank": 0,
         "junk": draw(st.integers(1, 5))}[kind]
    toks = [draw(_int_token()) if kind == "junk" else str(draw(st.integers(-5, 10**6))).encode()
            for _ in range(n)]
    lines.append(draw(st.sampled_from([b" ", b"\t", b"  "])).join(toks))
  if lines and draw(st.booleans()):
    lines += draw(st.lists(st.sampled_from(lines), max_size=3))
  end = draw(st.sampled_from([b"\n", b"\r\n"]))
  return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + end.join(lines) + (
      end if draw(st.booleans()) else b"")


def _check_s3rec(raw, how, skip, tmp_path):
  path = tmp_path / "s3rec.txt"
  path.write_bytes(raw)
  call = lambda: sources.read_source("s3rec", str(path), on_error="skip" if skip else "raise")
  if how == "truncated":
    _expect_error(call, path)
    return "truncated gzip"
  if how == "utf16":
    _expect_error(call, path, 1)
    return "utf-16"
  text = gzip.decompress(raw) if how == "gzip" else raw
  text = text[3:] if text.startswith(b"\xef\xbb\xbf") else text
  users, items, bad, reject = [], [], 0, None
  for i, line in enumerate(ref_lines(text)):
    toks = line.split()
    vals = [ref_int(t) for t in toks]
    if any(v is None for v in vals):
      if not skip:
        reject = i + 1
        break
      bad += 1
      continue
    if len(vals) >= 2:
      users += [vals[0]] * (len(vals) - 1)
      items += vals[1:]
  if reject is not None:
    _expect_error(call, path, reject)
    return "rejected line"
  if not items:
    _expect_error(call, path)
    return "no interactions"
  inter = call()
  assert inter.users.tolist() == users and inter.items.tolist() == items
  assert inter.timestamps.tolist() == list(range(len(items)))
  assert inter.report["malformed"] == bad
  return "parsed"


def _s3rec_test(n):
  @_settings(n)
  @given(data=st.data())
  def run(tmp_path_factory, data):
    raw, how = _wrap(data.draw, data.draw(_s3rec_file()))
    outcome = _check_s3rec(raw, how, data.draw(st.booleans()), _scratch(tmp_path_factory))
    _record(f"s3rec:{outcome}")
    _record("s3rec")
  return run


def test_s3rec_fast(tmp_path_factory):
  _s3rec_test(FAST)(tmp_path_factory)


@pytest.mark.reliability
def test_s3rec_many(tmp_path_factory):
  _s3rec_test(MANY)(tmp_path_factory)
  _covered("s3rec")


# ---- table: CSV with a header and named columns

_ID_POOL = [b"1", b"2", b"3", b"3.0", b"03", b"+3", b"u7", b"A1B2", b"9" * 25, b"-4", b" 5 ",
            b"\xc3\xa9t\xc3\xa9", b"1e2", b"100"]
_TIME_POOL = [b"0", b"978300760", b"-5", b"1.5", b"2.99", b"2020-01-02", b"2020-01-02T03:04:05",
              b"1e30", b"9" * 20, b"nan", b"inf", b"yesterday", b"2020-13-45", b"1_000", b" 7 "]
_RATING_POOL = [b"4", b"3.5", b"0", b"-1", b"nan", b"inf", b"x", b"1e3", b" 2 "]


@st.composite
def _table_file(draw):
  cols = draw(st.permutations(["user", "item", "time", "rating", "extra"]))
  header = b",".join(c.encode() for c in cols)
  if draw(st.integers(0, 15)) == 0:
    header = header.replace(b"time", b"tiem")
  rows = []
  for _ in range(draw(st.integers(0, 20))):
    vals = {"user": draw(st.sampled_from(_ID_POOL)), "item": draw(st.sampled_from(_ID_POOL)),
            "time": draw(st.sampled_from(_TIME_POOL)), "rating": draw(st.sampled_from(_RATING_POOL)),
            "extra": b"x"}
    if draw(st.integers(0, 8)) == 0:
      vals[draw(st.sampled_from(["user", "item", "time"]))] = b""
    row = [vals[c] for c in cols]
    kind = draw(st.integers(0, 12))
    if kind == 0:
      row = row[:-1]
    elif kind == 1:
      row = row + [b"more"]
    elif kind == 2:
      row = []
    rows.append(b",".join(row))
  if rows and draw(st.booleans()):
    rows += draw(st.lists(st.sampled_from(rows), max_size=3))
  lines = ([header] if draw(st.integers(0, 10)) else []) + rows
  end = draw(st.sampled_from([b"\n", b"\r\n"]))
  return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + end.join(lines) + (
      end if draw(st.booleans()) else b"")


def _ref_id(v: str):
  r = ref_int(v.encode("utf-8"))
  return r if r is not None else v.strip()


def _ref_time(v: str):
  b = v.encode("utf-8")
  r = ref_int(b)
  if r is not None:
    return r
  f = ref_float(b)
  if f is not None:
    return math.floor(f) if abs(f) < 2**63 else None
  s = v.strip()
  if len(s) >= 10 and s[:4].isdigit() and s[4] == "-":
    try:
      return int(np.datetime64(s, "s").astype(np.int64))
    except ValueError:
      return None
  return None


def _check_table(raw, how, skip, tmp_path):
  path = tmp_path / "t.csv"
  path.write_bytes(raw)
  call = lambda: sources.read_source(
      "table", str(path), user_col="user", item_col="item", time_col="time",
      rating_col="rating", on_error="skip" if skip else "raise")
  if how == "truncated":
    _expect_error(call, path)
    return "truncated gzip"
  if how == "utf16":
    _expect_error(call, path, 1)
    return "utf-16"
  data = gzip.decompress(raw) if how == "gzip" else raw
  text = data.decode("utf-8").lstrip("\ufeff")
  reader = csv.reader(io.StringIO(text, newline=""))
  header, rows, bad = None, [], []
  for row in reader:
    if not row or all(not f.strip() for f in row):
      continue
    if header is None:
      header = [h.strip() for h in row]
      if any(c not in header for c in ("user", "item", "time", "rating")):
        _expect_error(call, path, reader.line_num)
        return "bad header"
      idx = [header.index(c) for c in ("user", "item", "time", "rating")]
      continue
    if len(row) != len(header):
      bad.append(reader.line_num)
      continue
    u, i, t, r = (row[j].strip() for j in idx)
    if not (u and i and t and r):
      continue  # missing: dropped whatever on_error says
    tv, rv = _ref_time(t), ref_float(r.encode())
    if tv is None or rv is None:
      bad.append(reader.line_num)
      continue
    rows.append((_ref_id(u), _ref_id(i), tv, rv))
  if header is None:
    _expect_error(call, path)
    return "empty"
  if bad and not skip:
    _expect_error(call, path, min(bad))
    return "rejected line"
  if not rows:
    _expect_error(call, path)
    return "no interactions"
  inter = call()
  assert inter.report["malformed"] == len(bad)
  for got, j in ((inter.users, 0), (inter.items, 1)):
    want = [r[j] for r in rows]
    if all(isinstance(w, int) for w in want):
      assert got.dtype == np.int64 and got.tolist() == want
    else:
      assert got.dtype.kind == "U" and got.tolist() == [str(w) for w in want]
  assert inter.timestamps.tolist() == [r[2] for r in rows]
  np.testing.assert_array_equal(inter.ratings, np.array([r[3] for r in rows], np.float32))
  return "parsed"


def _table_test(n):
  @_settings(n)
  @given(data=st.data())
  def run(tmp_path_factory, data):
    raw, how = _wrap(data.draw, data.draw(_table_file()))
    outcome = _check_table(raw, how, data.draw(st.booleans()), _scratch(tmp_path_factory))
    _record(f"table:{outcome}")
    _record("table")
  return run


def test_table_fast(tmp_path_factory):
  _table_test(FAST)(tmp_path_factory)


@pytest.mark.reliability
def test_table_many(tmp_path_factory):
  _table_test(MANY)(tmp_path_factory)
  _covered("table", ["bad header"])
