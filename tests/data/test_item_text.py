"""Item text and attributes aligned with a dataset's dense ids (seqrec_jax/data/item_text.py)."""

from __future__ import annotations

import json

import ml_collections
import numpy as np
import pytest

from seqrec_jax import presets
from seqrec_jax.config import base_config
from seqrec_jax.data import item_text
from seqrec_jax.data.dataset import SequenceDataset
from seqrec_jax.data.interactions import DataFormatError
from seqrec_jax.data.load import load_dataset


def dataset(raw_ids) -> SequenceDataset:
  """A dataset whose dense items 1..n have the raw ids `raw_ids` (no interactions needed)."""
  ids = np.asarray([0] + list(raw_ids))
  return SequenceDataset(offsets=np.zeros(1, np.int64), items=np.zeros(0, np.int32),
                         times=np.zeros(0, np.int64), user_ids=np.zeros(0, np.int64),
                         item_ids=ids)


def s3rec_cfg(root, name="Toys_and_Games") -> ml_collections.ConfigDict:
  cfg = base_config()
  cfg.data.format, cfg.data.root, cfg.data.path = "s3rec", str(root), f"s3rec/{name}.txt"
  return cfg


@pytest.fixture
def toys_root(tmp_path):
  """A data root laid out like ../shared/data: s3rec/ and amazon-text/."""
  (tmp_path / "s3rec").mkdir()
  (tmp_path / "amazon-text").mkdir()
  (tmp_path / "s3rec" / "Toys_and_Games.txt").write_text("1 3 1 2\n2 2 3 1\n")
  (tmp_path / "amazon-text" / "Toys_and_Games_item_text.tsv").write_text(
      "item_id\tasin\ttitle\tcategories\n"
      "1\t0123456789\t\"Quoted\" Train   Set\tToys & Games > Trains | Toys & Games > Wood\n"
      "2\tB00A850V92\tLEGO Star Wars\tToys & Games > Building Toys\n"
      "3\t012345678X\tPuzzle\tToys & Games > Puzzles\n", encoding="utf-8")
  (tmp_path / "amazon-text" / "Toys_and_Games_keywords.tsv").write_text(
      "item_id\tasin\tkeywords\n1\t0123456789\twooden train\n2\tB00A850V92\tlego star\n"
      "3\t012345678X\tjigsaw\n", encoding="utf-8")
  (tmp_path / "s3rec" / "Toys_and_Games_item2attributes.json").write_text(
      json.dumps({"1": [4, 2], "3": [1, 2, 3]}))
  return tmp_path


def test_texts_follow_the_dense_ids_not_the_file_order(toys_root):
  cfg = s3rec_cfg(toys_root)
  texts = item_text.item_texts(cfg.data, dataset([3, 1, 2]))
  assert texts == ["", "Puzzle. Categories: Toys & Games > Puzzles",
                   '"Quoted" Train Set. Categories: Toys & Games > Trains | Toys & Games > Wood',
                   "LEGO Star Wars. Categories: Toys & Games > Building Toys"]
  # the same files through the real preprocessing: dense ids of the loaded dataset
  cfg.data.cache_dir = ""
  ds = load_dataset(cfg.data)
  got = item_text.item_texts(cfg.data, ds, "{keywords}")
  want = {1: "wooden train", 2: "lego star", 3: "jigsaw"}
  assert got == [""] + [want[int(r)] for r in ds.item_ids[1:]]


def test_fields_of_both_files_and_asins_stay_strings(toys_root):
  cfg = s3rec_cfg(toys_root)
  fields = item_text.item_fields(cfg.data)
  assert fields.fields == ("asin", "title", "categories", "keywords")
  assert [f.rsplit("/", 1)[-1] for f in fields.files] == [
      "Toys_and_Games_item_text.tsv", "Toys_and_Games_keywords.tsv"]
  assert fields.rows[1]["asin"] == "0123456789" and fields.rows[3]["asin"] == "012345678X"
  texts = item_text.item_texts(cfg.data, dataset([1]), "{asin}: {keywords} ({title})")
  assert texts[1] == '0123456789: wooden train ("Quoted" Train Set)'


def test_files_that_disagree_on_a_shared_field_are_an_error(toys_root):
  kw = toys_root / "amazon-text" / "Toys_and_Games_keywords.tsv"
  kw.write_text(kw.read_text().replace("B00A850V92", "B00A850V93"))
  with pytest.raises(ValueError, match="'asin'.*B00A850V92.*B00A850V93"):
    item_text.item_fields(s3rec_cfg(toys_root).data)


def test_items_without_text_are_named(toys_root):
  cfg = s3rec_cfg(toys_root)
  ds = dataset([1, 7, 2, 9])
  with pytest.raises(ValueError, match=r"2 of 4 items have no text.*raw ids 7, 9"):
    item_text.item_texts(cfg.data, ds)
  assert item_text.item_texts(cfg.data, ds, "{keywords}", missing="empty") == [
      "", "wooden train", "", "lego star", ""]
  # a text that renders empty counts as missing
  (toys_root / "amazon-text" / "Toys_and_Games_keywords.tsv").write_text(
      "item_id\tasin\tkeywords\n1\t0123456789\t \n")
  with pytest.raises(ValueError, match="1 of 1 items have no text"):
    item_text.item_texts(cfg.data, dataset([1]), "{keywords}")


def test_template_errors_name_the_fields(toys_root):
  cfg = s3rec_cfg(toys_root)
  with pytest.raises(ValueError, match=r"uses \['genres'\].*fields: \['asin', 'title'"):
    item_text.item_texts(cfg.data, dataset([1]), "{title} {genres}")
  with pytest.raises(ValueError, match="plain field names"):
    item_text.item_texts(cfg.data, dataset([1]), "{title:>10}")
  with pytest.raises(ValueError, match="template"):
    item_text.item_texts(cfg.data, dataset([1]), "{title")
  assert item_text.item_texts(cfg.data, dataset([2]), "{{{title}}}")[1] == "{LEGO Star Wars}"


def test_default_templates():
  assert item_text.default_template(["asin", "title", "categories", "keywords"]) == (
      "{title}. Categories: {categories}")
  assert item_text.default_template(["title", "name", "year", "genres"]) == (
      "{title}. Genres: {genres}")
  assert item_text.default_template(["asin", "keywords"]) == "{keywords}"
  with pytest.raises(ValueError, match="set config.text.template"):
    item_text.default_template(["asin", "brand"])


def test_tsv_format_errors(tmp_path):
  bad = tmp_path / "t.tsv"
  bad.write_text("id\ttitle\n1\tx\n")
  with pytest.raises(DataFormatError, match="t.tsv:1.*item_id"):
    item_text.read_text_tsv(str(bad))
  bad.write_text("item_id\ttitle\n1\tx\n2\tx\ty\n")
  with pytest.raises(DataFormatError, match="t.tsv:3.*3 tab-separated fields"):
    item_text.read_text_tsv(str(bad))
  bad.write_text("item_id\ttitle\n1\tx\n1\ty\n")
  with pytest.raises(DataFormatError, match="t.tsv:3.*twice"):
    item_text.read_text_tsv(str(bad))


def test_movielens_files(tmp_path):
  dat = tmp_path / "movies.dat"
  dat.write_bytes("1::Toy Story (1995)::Animation|Children's|Comedy\n"
                  "2::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n".encode("latin-1"))
  f = item_text.read_movielens_items(str(dat))
  assert f.rows[2] == {"title": "Cité des enfants perdus, La (1995)",
                       "name": "Cité des enfants perdus, La", "year": "1995",
                       "genres": "Adventure, Sci-Fi"}
  item = tmp_path / "u.item"
  flags = ["0"] * 19
  flags[3] = flags[5] = "1"
  item.write_bytes(("|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://x"] + flags)
                    + "\n" + "|".join(["2", "unknown", "", "", ""] + ["1"] + ["0"] * 18)
                    + "\n").encode("latin-1"))
  (tmp_path / "u.genre").write_text("\n".join(f"{g}|{i}" for i, g in
                                              enumerate(item_text.ML100K_GENRES)) + "\n\n")
  f = item_text.read_movielens_items(str(item))
  assert f.rows[1]["genres"] == "Animation, Comedy" and f.rows[1]["name"] == "Toy Story"
  assert f.rows[2] == {"title": "unknown", "name": "unknown", "year": "", "genres": "unknown"}
  csv = tmp_path / "movies.csv"
  csv.write_text('movieId,title,genres\n7,"American President, The (1995)",Comedy|Drama\n'
                 "8,Nothing (2003),(no genres listed)\n")
  f = item_text.read_movielens_items(str(csv))
  assert f.rows[7]["title"] == "American President, The (1995)"
  assert f.rows[7]["genres"] == "Comedy, Drama" and f.rows[8]["genres"] == ""
  cfg = base_config()
  cfg.data.format, cfg.data.titles_path = "movielens", str(dat)
  assert item_text.item_texts(cfg.data, dataset([2, 1]), "{name} [{year}]")[1:] == [
      "Cité des enfants perdus, La [1995]", "Toy Story [1995]"]


def test_where_the_text_comes_from(tmp_path, toys_root):
  cfg = base_config()  # synthetic data has no text
  with pytest.raises(ValueError, match="synthetic.*config.text.path"):
    item_text.text_files(cfg.data)
  cfg.data.format = "movielens"
  with pytest.raises(ValueError, match="titles_path"):
    item_text.text_files(cfg.data)
  with pytest.raises(FileNotFoundError, match="Yelp_item_text.tsv.*config.text.path"):
    item_text.text_files(s3rec_cfg(toys_root, "Yelp").data)
  # an explicit path (relative to data.root; comma-separated)
  cfg = s3rec_cfg(toys_root, "Yelp")
  files = item_text.text_files(cfg.data, "amazon-text/Toys_and_Games_keywords.tsv, x.tsv")
  assert files == [str(toys_root / "amazon-text/Toys_and_Games_keywords.tsv"),
                   str(toys_root / "x.tsv")]
  assert item_text.item_texts(cfg.data, dataset([3]), "",
                              "amazon-text/Toys_and_Games_keywords.tsv") == ["", "jigsaw"]
  with pytest.raises(FileNotFoundError, match="x.tsv"):
    item_text.item_fields(cfg.data, "x.tsv")


def test_attributes_padded_and_aligned(toys_root):
  cfg = s3rec_cfg(toys_root)
  attrs = item_text.item_attributes(cfg.data, dataset([3, 2, 1]))
  np.testing.assert_array_equal(attrs.ids, [[0, 0, 0], [1, 2, 3], [0, 0, 0], [4, 2, 0]])
  np.testing.assert_array_equal(attrs.counts, [0, 3, 0, 2])
  assert attrs.num_attributes == 4 and attrs.missing == 1 and attrs.ids.dtype == np.int32
  (toys_root / "s3rec" / "Toys_and_Games_item2attributes.json").write_text('{"1": ["a"]}')
  with pytest.raises(ValueError, match="positive integer attribute ids"):
    item_text.item_attributes(cfg.data, dataset([1]))


# ---- the real files of ../shared/data ------------------------------------------------

@pytest.mark.parametrize("name, first, count", [
    ("toys", "Pocoyo And Friends Swiggle Traks Feature Track With Bridge. Categories: "
             "Toys & Games > Dolls & Accessories > Dolls", 11_924),
    ("sports", "ghost armorers tool 332 punch hunting fishing", 18_357),
    ("ml1m", "Toy Story (1995). Genres: Animation, Children's, Comedy", 3_615),
    ("ml100k", "Toy Story (1995). Genres: Animation, Children's, Comedy", 1_682),
])
def test_every_item_of_the_real_datasets_has_text(shared_data, tmp_path, name, first, count):
  cfg = presets.preset("sasrec", name)
  cfg.data.cache_dir = str(tmp_path)
  ds = load_dataset(cfg.data)
  texts = item_text.item_texts(cfg.data, ds)
  assert len(texts) == ds.num_items + 1 == count + 1 and texts[0] == ""
  assert all(texts[1:])
  dense = int(np.flatnonzero(ds.item_ids == 1)[0])  # raw item id 1
  assert texts[dense] == first
  if name in ("toys", "sports"):
    attrs = item_text.item_attributes(cfg.data, ds)
    assert attrs.ids.shape[0] == count + 1 and attrs.missing == 0 and attrs.counts[1:].min() > 0
