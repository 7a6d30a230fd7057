"""Readers + preprocessing on the public files in ../shared/data (skipped when absent)."""

from __future__ import annotations

from seqrec_jax.data import sources
from seqrec_jax.data.preprocess import PreprocessOptions, build_sequence_dataset


def sizes(ds) -> tuple[int, int, int]:
  return ds.num_users, ds.num_items, int(ds.offsets[-1])


def test_ml1m_subset(shared_data):
  inter = sources.read_source(
      "movielens", str(shared_data / "ml-1m-subset-users1-2999" / "ratings.dat.gz"))
  assert inter.report["lines"] == 487_650 and inter.report["malformed"] == 0
  ds = build_sequence_dataset(inter)
  assert sizes(ds) == (2_999, 3_615, 487_650)  # README: users, movies, ratings
  assert ds.user_ids[0] == 1 and ds.user_ids[-1] == 2999
  titles = sources.read_item_titles(str(shared_data / "ml-1m" / "movies.dat"))
  assert len(titles) == 3_883 and titles[1193] == "One Flew Over the Cuckoo's Nest (1975)"
  assert all(int(i) in titles for i in ds.item_ids[1:])


def test_s3rec_toys(shared_data):
  inter = sources.read_source("s3rec", str(shared_data / "s3rec" / "Toys_and_Games.txt"))
  ds = build_sequence_dataset(inter, PreprocessOptions(dedup="none"))
  assert sizes(ds) == (19_412, 11_924, 167_597)
  assert ds.lengths.min() >= 5


def test_ml100k(shared_data):
  inter = sources.read_source("ml100k", str(shared_data / "ml-100k" / "u.data"))
  assert sizes(build_sequence_dataset(inter)) == (943, 1_682, 100_000)
  assert len(sources.read_item_titles(str(shared_data / "ml-100k" / "u.item"))) == 1_682


def test_ticoserec_aligned_times(shared_data):
  folder = shared_data / "amazon-sports-ticoserec"
  inter = sources.read_source("s3rec", str(folder / "Sports_item_org_rank.txt"),
                              time_path=str(folder / "Sports_time_org_rank.txt"))
  ds = build_sequence_dataset(inter, PreprocessOptions(dedup="none"))
  assert sizes(ds) == (35_598, 18_357, 296_337)


def test_sasrec_video(shared_data):
  inter = sources.read_source("sasrec", str(shared_data / "sasrec" / "Video.txt"))
  ds = build_sequence_dataset(inter, PreprocessOptions())
  assert sizes(ds) == (31_013, 23_715, 287_107)
