"""`load_dataset`: config plumbing, the .npz cache and its invalidation."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from seqrec_jax.config import base_config
from seqrec_jax.data import load

ML_DAT = "1::10::5::100\n1::20::3::90\n1::30::4::95\n2::10::4::50\n2::30::2::60\n"


def config(tmp_path: Path, **overrides):
  cfg = base_config().data
  path = tmp_path / "ratings.dat"
  if not path.exists():
    path.write_text(ML_DAT)
  cfg.format = "movielens"
  cfg.path = str(path)
  cfg.cache_dir = str(tmp_path / "cache")
  for k, v in overrides.items():
    setattr(cfg, k, v)
  return cfg


@pytest.fixture
def count_reads(monkeypatch):
  """Counts calls of the reader behind load_dataset."""
  calls = []
  real = load.read_source

  def counting(*args, **kw):
    calls.append(args)
    return real(*args, **kw)

  monkeypatch.setattr(load, "read_source", counting)
  return calls


def test_no_cache(tmp_path):
  ds = load.load_dataset(config(tmp_path, cache_dir=""))
  assert ds.report["cache"] == "off" and ds.num_users == 2 and ds.num_items == 3
  assert ds.item_ids[ds.sequence(0)].tolist() == [20, 30, 10]
  assert not (tmp_path / "cache").exists()


def test_cache_hit_does_not_reread(tmp_path, monkeypatch):
  first = load.load_dataset(config(tmp_path))
  assert first.report["cache"] == "miss" and os.path.isfile(first.report["cache_file"])

  def boom(*args, **kw):
    raise AssertionError("the cache should have been used")

  monkeypatch.setattr(load, "read_source", boom)
  second = load.load_dataset(config(tmp_path))
  assert second.report["cache"] == "hit"
  assert second.report["cache_file"] == first.report["cache_file"]
  for name in ("offsets", "items", "times", "user_ids", "item_ids"):
    np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
  assert second.report["interactions"] == first.report["interactions"]


def test_cache_invalidated_by_options_and_content(tmp_path, count_reads):
  base = load.load_dataset(config(tmp_path))
  filtered = load.load_dataset(config(tmp_path, min_rating=4.0))
  assert filtered.report["cache"] == "miss" and filtered.report["interactions"] == 3
  assert load.load_dataset(config(tmp_path, dedup="none")).report["cache"] == "miss"
  assert load.load_dataset(config(tmp_path, on_error="skip")).report["cache"] == "miss"
  assert load.load_dataset(config(tmp_path, min_rating=4.0)).report["cache"] == "hit"
  assert len(count_reads) == 4
  (tmp_path / "ratings.dat").write_text(ML_DAT + "3::10::1::1\n")  # new contents
  changed = load.load_dataset(config(tmp_path))
  assert changed.report["cache"] == "miss" and changed.num_users == base.num_users + 1
  assert len(os.listdir(tmp_path / "cache")) == 5


def test_corrupt_cache_is_rebuilt(tmp_path, caplog):
  cache_file = load.load_dataset(config(tmp_path)).report["cache_file"]
  data = Path(cache_file).read_bytes()
  Path(cache_file).write_bytes(data[:len(data) // 2])  # truncated
  with caplog.at_level(logging.WARNING, logger=load.__name__):
    ds = load.load_dataset(config(tmp_path))
  assert ds.report["cache"] == "miss" and ds.num_users == 2
  assert any("rebuilding" in r.getMessage() for r in caplog.records)
  assert load.load_dataset(config(tmp_path)).report["cache"] == "hit"  # overwritten


def test_missing_input_names_config_key(tmp_path):
  cfg = config(tmp_path, path=str(tmp_path / "nope.dat"))
  with pytest.raises(FileNotFoundError, match=r"data\.path.*nope\.dat"):
    load.load_dataset(cfg)
  cfg = config(tmp_path, format="s3rec", time_path=str(tmp_path / "t.txt"))
  with pytest.raises(FileNotFoundError, match=r"data\.time_path.*t\.txt"):
    load.load_dataset(cfg)


def test_unknown_format(tmp_path):
  with pytest.raises(ValueError, match="synthetic"):
    load.load_dataset(config(tmp_path, format="netflix"))


def test_download_when_path_missing(tmp_path, monkeypatch):
  fetched = []

  def fake_ensure(name, cache_dir, **kw):
    fetched.append((name, cache_dir))
    p = Path(cache_dir) / "ml-1m" / "ratings.dat"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(ML_DAT)
    return str(p)

  monkeypatch.setattr(load, "ensure_movielens", fake_ensure)
  cfg = config(tmp_path, path=str(tmp_path / "absent" / "ratings.dat"), download="ml-1m")
  assert load.load_dataset(cfg).num_users == 2
  assert fetched == [("ml-1m", cfg.cache_dir)]
  # An existing path wins over downloading.
  assert load.load_dataset(config(tmp_path, download="ml-1m")).num_users == 2
  assert len(fetched) == 1


def test_s3rec_and_table_formats(tmp_path):
  items = tmp_path / "items.txt"
  times = tmp_path / "times.txt"
  items.write_text("1 5 6 7\n2 6 8\n")
  times.write_text("1 300 100 200\n2 50 60\n")
  ds = load.load_dataset(config(tmp_path, format="s3rec", path=str(items),
                                time_path=str(times)))
  assert ds.item_ids[ds.sequence(0)].tolist() == [6, 7, 5]  # re-sorted by the times
  table = tmp_path / "log.csv"
  table.write_text("who;what;when\nu1;a;2\nu1;b;1\nu2;a;5\n")
  ds = load.load_dataset(config(tmp_path, format="table", path=str(table), user_col="who",
                                item_col="what", time_col="when", sep=";"))
  assert ds.item_ids.tolist() == ["", "a", "b"]
  assert ds.item_ids[ds.sequence(0)].tolist() == ["b", "a"]
  assert load.load_dataset(config(tmp_path, format="table", path=str(table), user_col="who",
                                  item_col="what", time_col="when", sep=";")
                           ).report["cache"] == "hit"  # str ids survive the .npz


def test_synthetic(tmp_path):
  cfg = config(tmp_path, format="synthetic")
  cfg.synthetic.num_users = 20
  cfg.synthetic.num_items = 30
  cfg.synthetic.max_len = 12
  ds = load.load_dataset(cfg)
  assert ds.num_users == 20 and ds.report["cache"] == "off"
  assert ds.items.min() >= 1 and ds.items.max() == ds.num_items
