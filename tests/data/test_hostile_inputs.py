"""The hostile inputs of issue 15, one by one: each parses like its clean twin or stops
with a DataFormatError naming the file (and line)."""

import gzip

import numpy as np
import pytest

from configs import default
from seqrec_jax.data import sources
from seqrec_jax.data.dataset import DataTooSmallError
from seqrec_jax.data.interactions import DataFormatError
from seqrec_jax.train import engine

ROWS = b"1::10::4::100\n1::11::3::101\n2::10::5::102\n"


def write(tmp_path, name, data):
  p = tmp_path / name
  p.write_bytes(data)
  return str(p)


def test_ids_above_int64_name_the_line_and_skip_skips_them(tmp_path):
  p = write(tmp_path, "r.dat", ROWS + b"18446744073709551617::10::4::103\n")
  with pytest.raises(DataFormatError, match=rf"^{p}:4: field 1 .* outside the int64 range"):
    sources.read_movielens_dat(p)
  got = sources.read_movielens_dat(p, on_error="skip")
  assert got.users.tolist() == [1, 1, 2] and got.report["malformed"] == 1


def test_truncated_gzip_names_the_file(tmp_path):
  p = write(tmp_path, "r.dat.gz", gzip.compress(ROWS * 50)[:-12])
  with pytest.raises(DataFormatError, match=rf"^{p}: truncated or damaged gzip"):
    sources.read_source("movielens", p)


@pytest.mark.parametrize("data,why", [(b"", "empty"), (b"\n\n", "blank"),
                                      (b"a::b\nc::d\n", "malformed")])
def test_empty_or_all_malformed_file_names_the_path(tmp_path, data, why):
  p = write(tmp_path, "r.dat", data)
  with pytest.raises(DataFormatError, match=rf"^{p}: no interactions: .*{why}"):
    sources.read_source("movielens", p, on_error="skip")


def test_header_only_csv(tmp_path):
  p = write(tmp_path, "ratings.csv", b"userId,movieId,rating,timestamp\n")
  with pytest.raises(DataFormatError, match=rf"^{p}: no interactions: .*header only"):
    sources.read_source("movielens_csv", p)


def test_utf8_bom_is_dropped_by_every_reader(tmp_path):
  plain = sources.read_movielens_dat(write(tmp_path, "a.dat", ROWS))
  bom = sources.read_movielens_dat(write(tmp_path, "b.dat", b"\xef\xbb\xbf" + ROWS))
  assert bom.users.tolist() == plain.users.tolist()
  s = sources.read_sasrec_txt(write(tmp_path, "c.txt", b"\xef\xbb\xbf1 2\n1 3\n"))
  assert s.users.tolist() == [1, 1]


def test_utf16_file_is_named(tmp_path):
  p = write(tmp_path, "r.dat", b"\xff\xfe" + ROWS.decode().encode("utf-16-le"))
  with pytest.raises(DataFormatError, match=rf"^{p}:1: the file is UTF-16"):
    sources.read_source("movielens", p)


def test_double_colon_reader_rejects_a_tab_separated_file(tmp_path):
  p = write(tmp_path, "r.dat", b"1\t10\t4\t100\n")
  with pytest.raises(DataFormatError, match=rf"^{p}:1: expected 4 fields separated by '::'"):
    sources.read_movielens_dat(p)
  p = write(tmp_path, "s.dat", b"1::10::::100\n")  # an empty field
  with pytest.raises(DataFormatError, match=rf"^{p}:1:"):
    sources.read_movielens_dat(p)


def test_table_ids_stay_one_user_beside_an_odd_id(tmp_path):
  p = write(tmp_path, "t.csv", b"user,item,time\n3,1,1\n3.0,2,2\n03,3,3\nabc,1,4\n")
  got = sources.read_table(p, user_col="user", item_col="item", time_col="time")
  assert got.users.tolist() == ["3", "3", "3", "abc"]
  p = write(tmp_path, "u.csv", b"user,item,time\n3,1,1\n3.0,2,2\n")
  assert sources.read_table(p, user_col="user", item_col="item",
                            time_col="time").users.tolist() == [3, 3]


def test_numbers_python_accepts_but_the_format_does_not(tmp_path):
  for tok in (b"1_000", b"0x10", b"nan", b"inf", b"1.5"):
    p = write(tmp_path, "r.dat", b"1::" + tok + b"::4::100\n")
    with pytest.raises(DataFormatError, match=rf"^{p}:1: field 2"):
      sources.read_movielens_dat(p)


def test_data_too_small_to_evaluate_is_rejected_before_training(tmp_path):
  p = write(tmp_path, "r.dat", b"".join(f"{u}::{i}::4::{i}\n".encode()
                                        for u in range(1, 30) for i in (1, 2)))
  cfg = default.get_config("smoke")
  cfg.data.format, cfg.data.path, cfg.data.cache_dir = "movielens", p, ""
  with pytest.raises(DataTooSmallError, match=rf"^{p}: no user has the 3 interactions"):
    engine.load_split(cfg)
  assert not (tmp_path / "checkpoints").exists()
