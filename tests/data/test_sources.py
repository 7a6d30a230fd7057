"""Raw-format readers on tiny files written into tmp_path."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from seqrec_jax.data import sources
from seqrec_jax.data.interactions import DataFormatError

ML_DAT = "1::10::5::100\n1::20::3::90\n2::10::4::50\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
  p = tmp_path / name
  p.write_bytes(text.encode("latin-1") if isinstance(text, str) else text)
  return str(p)


@pytest.mark.parametrize("gz", [False, True])
def test_movielens_dat(tmp_path, gz):
  raw = ML_DAT.encode()
  # A gzipped file is detected by its magic bytes, whatever its name.
  path = write(tmp_path, "ratings.dat", gzip.compress(raw) if gz else raw)
  inter = sources.read_movielens_dat(path)
  np.testing.assert_array_equal(inter.users, [1, 1, 2])
  np.testing.assert_array_equal(inter.items, [10, 20, 10])
  np.testing.assert_array_equal(inter.timestamps, [100, 90, 50])
  np.testing.assert_allclose(inter.ratings, [5, 3, 4])
  assert inter.users.dtype == np.int64 and inter.timestamps.dtype == np.int64
  assert inter.report["lines"] == 3 and inter.report["kept"] == 3
  assert inter.report["malformed"] == 0


def test_movielens_dat_crlf_blank_and_no_final_newline(tmp_path):
  path = write(tmp_path, "r.dat", "1::10::5::100\r\n\r\n2::10::4::50")
  inter = sources.read_movielens_dat(path)
  np.testing.assert_array_equal(inter.users, [1, 2])
  assert inter.report["blank"] == 1 and inter.report["lines"] == 3


@pytest.mark.parametrize("bad,what", [
    ("2::10::4\n", "expected 4 fields"),  # wrong count: caught on the fast path
    ("2::abc::4::50\n", "not an integer"),  # non-numeric: found by the line scan
    ("2::10::4.5::nan\n", "not an integer"),
])
def test_malformed_line_raises_with_path_and_line(tmp_path, bad, what):
  path = write(tmp_path, "ratings.dat", "1::10::5::100\n\n" + bad + "3::1::1::1\n")
  with pytest.raises(DataFormatError) as e:
    sources.read_movielens_dat(path)
  assert e.value.line == 3  # 1-based, the blank line counts
  assert f"{path}:3" in str(e.value) and what in str(e.value)
  assert bad.strip() in str(e.value)  # quotes the line


@pytest.mark.parametrize("bad", ["2::10::4\n", "2::abc::4::50\n"])
def test_malformed_line_skipped_and_counted(tmp_path, bad):
  path = write(tmp_path, "ratings.dat", "1::10::5::100\n" + bad + "3::1::1::1\n")
  inter = sources.read_movielens_dat(path, on_error="skip")
  np.testing.assert_array_equal(inter.users, [1, 3])
  assert inter.report["malformed"] == 1 and inter.report["kept"] == 2
  assert inter.report["malformed_examples"] == [[2, bad.strip()]]


def test_many_malformed_keep_five_examples(tmp_path):
  path = write(tmp_path, "r.dat", "1::2\n" * 8 + "1::10::5::100\n")
  inter = sources.read_movielens_dat(path, on_error="skip")
  assert inter.report["malformed"] == 8 and len(inter) == 1
  assert [e[0] for e in inter.report["malformed_examples"]] == [1, 2, 3, 4, 5]


def test_bad_on_error_value(tmp_path):
  path = write(tmp_path, "r.dat", ML_DAT)
  with pytest.raises(ValueError, match="on_error"):
    sources.read_movielens_dat(path, on_error="ignore")


def test_movielens_100k(tmp_path):
  path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
  inter = sources.read_movielens_100k(path)
  np.testing.assert_array_equal(inter.users, [196, 186])
  np.testing.assert_array_equal(inter.timestamps, [881250949, 891717742])


def test_movielens_csv(tmp_path):
  path = write(tmp_path, "ratings.csv",
               "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,x,1112484676\n")
  with pytest.raises(DataFormatError, match=r"ratings.csv:3: field 3"):
    sources.read_movielens_csv(path)
  inter = sources.read_movielens_csv(path, on_error="skip")
  np.testing.assert_allclose(inter.ratings, [3.5])
  assert inter.report["lines"] == 3 and inter.report["malformed"] == 1


def test_movielens_csv_byte_order_mark(tmp_path):
  path = write(tmp_path, "ratings.csv", b"\xef\xbb\xbfuserId,movieId,rating,timestamp\n1,2,3,4\n")
  assert len(sources.read_movielens_csv(path)) == 1


def test_movielens_csv_wrong_header(tmp_path):
  path = write(tmp_path, "ratings.csv", "user,item,rating,time\n1,2,3,4\n")
  with pytest.raises(DataFormatError, match="ratings.csv:1: expected header"):
    sources.read_movielens_csv(path)


def test_sasrec_time_is_line_order(tmp_path):
  path = write(tmp_path, "Video.txt", "1 6393\n1 7\n2 5\n")
  inter = sources.read_sasrec_txt(path)
  np.testing.assert_array_equal(inter.items, [6393, 7, 5])
  np.testing.assert_array_equal(inter.timestamps, [1, 2, 3])
  assert inter.ratings is None


def test_s3rec(tmp_path):
  path = write(tmp_path, "Toys.txt", "1 5 6 7\n2 6\n3\n")
  inter = sources.read_s3rec_txt(path)
  np.testing.assert_array_equal(inter.users, [1, 1, 1, 2])
  np.testing.assert_array_equal(inter.items, [5, 6, 7, 6])
  assert np.all(np.diff(inter.timestamps) > 0)  # running position: order only
  assert inter.report["empty"] == 1 and inter.report["kept"] == 2


def test_s3rec_malformed(tmp_path):
  path = write(tmp_path, "Toys.txt", "1 5 6\n2 x 7\n3 8\n")
  with pytest.raises(DataFormatError, match=r"Toys.txt:2: token 'x'"):
    sources.read_s3rec_txt(path)
  inter = sources.read_s3rec_txt(path, on_error="skip")
  np.testing.assert_array_equal(inter.users, [1, 1, 3])
  assert inter.report["malformed"] == 1


def test_s3rec_with_time_file(tmp_path):
  path = write(tmp_path, "items.txt", "1 5 6 7\n2 6 8\n")
  times = write(tmp_path, "times.txt", "1 100 100 300\n2 50 60\n")
  inter = sources.read_s3rec_txt(path, time_path=times)
  np.testing.assert_array_equal(inter.items, [5, 6, 7, 6, 8])
  np.testing.assert_array_equal(inter.timestamps, [100, 100, 300, 50, 60])


def test_s3rec_time_file_malformed_line_skipped_in_both(tmp_path):
  path = write(tmp_path, "items.txt", "1 5 6\n2 6 8\n3 9 9\n")
  times = write(tmp_path, "times.txt", "1 10 20\n2 x 60\n3 1 2\n")
  with pytest.raises(DataFormatError, match=r"times.txt:2"):
    sources.read_s3rec_txt(path, time_path=times)
  inter = sources.read_s3rec_txt(path, time_path=times, on_error="skip")
  np.testing.assert_array_equal(inter.users, [1, 1, 3, 3])
  np.testing.assert_array_equal(inter.timestamps, [10, 20, 1, 2])
  assert inter.report["malformed"] == 1


@pytest.mark.parametrize("times_text,line", [
    ("1 100 100 300\n2 50\n", 2),  # line 2 is one time short
    ("1 100 100 300\n3 50 60\n", 2),  # line 2 names another user
    ("1 100 100 300\n", 2),  # time file ends early
])
def test_s3rec_time_file_misaligned(tmp_path, times_text, line):
  path = write(tmp_path, "items.txt", "1 5 6 7\n2 6 8\n")
  times = write(tmp_path, "times.txt", times_text)
  with pytest.raises(DataFormatError) as e:
    sources.read_s3rec_txt(path, time_path=times)
  assert e.value.path == times and e.value.line == line
  assert f"{times}:{line}" in str(e.value)


def test_table_str_ids_missing_and_dates(tmp_path):
  path = write(tmp_path, "log.csv",
               "item,user,when,extra\n"
               "A,u1,2020-01-02,x\n"
               "B,u1,2020-01-01,y\n"
               ",u2,2020-01-01,z\n"  # missing item: dropped, counted as missing
               "\n"
               "C,u2,2020-01-03,w\n")
  inter = sources.read_table(path, user_col="user", item_col="item", time_col="when")
  assert inter.users.dtype.kind == "U" and inter.items.dtype.kind == "U"
  np.testing.assert_array_equal(inter.items, ["A", "B", "C"])
  assert inter.timestamps[0] - inter.timestamps[1] == 86400
  rep = inter.report
  assert (rep["missing"], rep["blank"], rep["malformed"], rep["kept"]) == (1, 1, 0, 3)


def test_table_int_ids_ratings_and_bad_row(tmp_path):
  path = write(tmp_path, "log.tsv", "u\ti\tt\tr\n1\t7\t10\t4.5\n2\t8\t11\n3\t9\tsoon\t1\n")
  kw = dict(user_col="u", item_col="i", time_col="t", rating_col="r", sep="\t")
  with pytest.raises(DataFormatError, match=r"log.tsv:3: expected 4 fields"):
    sources.read_table(path, **kw)
  inter = sources.read_table(path, on_error="skip", **kw)
  assert inter.users.dtype == np.int64
  np.testing.assert_array_equal(inter.users, [1])
  np.testing.assert_allclose(inter.ratings, [4.5])
  assert inter.report["malformed"] == 2  # short row, and 'soon' is not a time


def test_table_raises_at_first_bad_line(tmp_path):
  # A bad time (line 2) is found after the scan for short rows (line 4), yet reported first.
  path = write(tmp_path, "log.csv", "u,i,t\n1,2,never\n1,3,4\n1,4\n")
  with pytest.raises(DataFormatError) as e:
    sources.read_table(path, user_col="u", item_col="i", time_col="t")
  assert e.value.line == 2 and "'never' is not a time" in str(e.value)


def test_table_unknown_column(tmp_path):
  path = write(tmp_path, "log.csv", "user,item,time\n1,2,3\n")
  with pytest.raises(DataFormatError) as e:
    sources.read_table(path, user_col="user", item_col="movie", time_col="time")
  msg = str(e.value)
  assert path in msg and "'movie'" in msg and "['user', 'item', 'time']" in msg


def test_table_parquet_needs_pyarrow_or_pandas(tmp_path):
  try:
    import pyarrow  # noqa: F401
    pytest.skip("pyarrow installed")
  except ImportError:
    pass
  try:
    import pandas  # noqa: F401
    pytest.skip("pandas installed")
  except ImportError:
    pass
  path = write(tmp_path, "log.parquet", b"PAR1")
  with pytest.raises(ImportError, match="pyarrow"):
    sources.read_table(path, user_col="u", item_col="i", time_col="t")


def test_item_titles(tmp_path):
  movies = write(tmp_path, "movies.dat",
                 "1::Toy Story (1995)::Animation\n73::Mis\xe9rables, Les (1995)::Drama\n")
  assert sources.read_item_titles(movies) == {1: "Toy Story (1995)",
                                              73: "Mis\xe9rables, Les (1995)"}
  uitem = write(tmp_path, "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|0|1\n")
  assert sources.read_item_titles(uitem) == {1: "Toy Story (1995)"}


def test_read_source_dispatch(tmp_path):
  path = write(tmp_path, "ratings.dat", ML_DAT)
  assert len(sources.read_source("movielens", path)) == 3
  with pytest.raises(ValueError, match="valid formats.*movielens"):
    sources.read_source("netflix", path)
  with pytest.raises(FileNotFoundError, match="nope.dat"):
    sources.read_source("movielens", str(tmp_path / "nope.dat"))
