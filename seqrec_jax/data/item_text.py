"""Item side information aligned with a dataset's dense item ids: text and attributes.

`item_texts(cfg.data, dataset, template)` gives one string per dense item id (index 0,
the padding id, is ""), assembled from the dataset's metadata files by a template such
as "{title}. Categories: {categories}". Where the text comes from:

| data              | file (relative to data.root unless `path` says otherwise)       | fields |
|-------------------|------------------------------------------------------------------|--------|
| movielens, ml100k, movielens_csv | `data.titles_path` (`movies.dat` latin-1, `u.item` latin-1, `movies.csv` UTF-8) | title ("Toy Story (1995)"), name ("Toy Story"), year, genres ("Animation, Children's, Comedy") |
| s3rec `X.txt`     | `amazon-text/X_item_text.tsv` and `amazon-text/X_keywords.tsv`, those that exist (the folder beside the one holding X.txt) | each column but item_id: Toys title, categories, asin, keywords; Sports keywords, asin |
| anything          | `path`: comma-separated TSV files (header `item_id<TAB>...`) or MovieLens item files | the TSV columns |

TSV files are UTF-8, tab-separated, unquoted (a `"` is an ordinary character) and ids
are compared as integers when they are digits, so ASIN-like strings stay strings. An
item of the dataset with no text (absent from every file, or rendering to "") is an
error naming how many and which raw ids.

`item_attributes(cfg.data, dataset)` reads S3-Rec's `X_item2attributes.json` (attribute
ids per raw item id, no names) into a padded [num_items + 1, A] matrix: a second,
non-text side feature.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import string
from typing import Any, Iterable

import numpy as np

from seqrec_jax import config as config_lib
from seqrec_jax.data.interactions import DataFormatError
from seqrec_jax.data.textio import read_bytes

__all__ = ["ItemAttributes", "ItemFields", "default_template", "item_attributes",
           "item_fields", "item_texts", "render", "text_files"]

MOVIELENS_FORMATS = ("movielens", "ml100k", "movielens_csv")
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                 "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_MAX_LISTED = 10  # raw ids quoted in the missing-text error


def _key(raw: Any) -> Any:
  """A raw item id in the form both sides are compared in: int when it is an integer."""
  if isinstance(raw, (bool, np.bool_)):
    return raw
  if isinstance(raw, (int, np.integer)):
    return int(raw)
  s = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
  s = s.strip()
  return int(s) if s.lstrip("-").isdigit() else s


@dataclasses.dataclass
class ItemFields:
  """Text fields per raw item id, read from `files`; `fields` names every field."""

  rows: dict[Any, dict[str, str]]
  fields: tuple[str, ...]
  files: tuple[str, ...]


# ------------------------------------------------------------------------------ readers

def read_text_tsv(path: str) -> ItemFields:
  """`item_id<TAB>col...` with one header line: {id: {col: value}} (UTF-8, unquoted)."""
  text = read_bytes(path).decode("utf-8").lstrip("\ufeff")
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  if not lines:
    raise DataFormatError(path, 1, "empty file: expected a header line 'item_id<TAB>...'")
  header = lines[0].rstrip("\r").split("\t")
  if header[0] != "item_id" or len(header) < 2:
    raise DataFormatError(path, 1, f"expected a header 'item_id<TAB>field...', got "
                          f"{lines[0][:120]!r}")
  names = tuple(header[1:])
  rows: dict[Any, dict[str, str]] = {}
  for n, line in enumerate(lines[1:], start=2):
    line = line.rstrip("\r")
    if not line.strip():
      continue
    cols = line.split("\t")
    if len(cols) != len(header):
      raise DataFormatError(path, n, f"{len(cols)} tab-separated fields, the header has "
                            f"{len(header)}: {line[:120]!r}")
    key = _key(cols[0])
    if key in rows:
      raise DataFormatError(path, n, f"item id {cols[0]!r} appears twice")
    rows[key] = dict(zip(names, (c.strip() for c in cols[1:])))
  return ItemFields(rows, names, (path,))


def _movie_fields(title: str, genres: Iterable[str]) -> dict[str, str]:
  title = title.strip()
  m = _YEAR.match(title)
  name, year = (m.group(1), m.group(2)) if m else (title, "")
  return {"title": title, "name": name, "year": year,
          "genres": ", ".join(g for g in genres if g and g != "(no genres listed)")}


def read_movielens_items(path: str) -> ItemFields:
  """ML-1M `movies.dat` (`id::title::A|B`), ML-100K `u.item` (`id|title|date|...|19 genre
  flags`, genre names from `u.genre` beside it) or `movies.csv` (`movieId,title,genres`)."""
  data = read_bytes(path)
  rows: dict[Any, dict[str, str]] = {}
  if str(path).lower().endswith(".csv"):
    reader = csv.reader(io.StringIO(data.decode("utf-8").lstrip("\ufeff"), newline=""))
    next(reader, None)
    numbered = ((reader.line_num, r, r[2].split("|") if len(r) > 2 else []) for r in reader)
  else:
    text = data.decode("latin-1")
    lines = text.split("\n")
    if lines and lines[-1] == "":
      lines.pop()
    sep = "::" if lines and "::" in lines[0] else "|"
    genre_names = _ml100k_genres(path) if sep == "|" else ()

    def parse(n: int, line: str):
      f = line.rstrip("\r").split(sep)
      if sep == "::":
        return n, f, f[2].split("|") if len(f) > 2 else []
      flags = f[5:]
      return n, f, [g for g, on in zip(genre_names, flags) if on.strip() == "1"]
    numbered = (parse(i + 1, line) for i, line in enumerate(lines))
  for n, fields, genres in numbered:
    if not fields or not "".join(fields).strip():
      continue
    if len(fields) < 2 or not fields[0].strip():
      raise DataFormatError(path, n, f"expected an id and a title: {'|'.join(fields)[:120]!r}")
    rows[_key(fields[0])] = _movie_fields(fields[1], genres)
  return ItemFields(rows, ("title", "name", "year", "genres"), (path,))


def _ml100k_genres(item_path: str) -> tuple[str, ...]:
  """Genre names by flag column: `u.genre` beside `u.item` (`name|index`), else built in."""
  genre_path = os.path.join(os.path.dirname(item_path), "u.genre")
  if not os.path.isfile(genre_path):
    return ML100K_GENRES
  pairs = []
  for line in read_bytes(genre_path).decode("latin-1").splitlines():
    name, _, idx = line.strip().rpartition("|")
    if name and idx.isdigit():
      pairs.append((int(idx), name))
  return tuple(name for _, name in sorted(pairs)) or ML100K_GENRES


def _read_any(path: str) -> ItemFields:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"item text file not found: {path}")
  base = os.path.basename(path).lower()
  if base.endswith((".tsv", ".tsv.gz")):
    return read_text_tsv(path)
  if base.endswith((".dat", ".dat.gz", ".csv")) or base.startswith("u.item"):
    return read_movielens_items(path)
  raise ValueError(f"item text file {path}: expected a .tsv (item_id<TAB>...), movies.dat, "
                   "u.item or movies.csv")


def _merge(parts: list[ItemFields]) -> ItemFields:
  """Fields of several files joined by item id (a field in two files must agree)."""
  if len(parts) == 1:
    return parts[0]
  rows: dict[Any, dict[str, str]] = {}
  names: list[str] = []
  for part in parts:
    names += [n for n in part.fields if n not in names]
    for key, row in part.rows.items():
      into = rows.setdefault(key, {})
      for name, value in row.items():
        if name in into and into[name] != value:
          raise ValueError(f"item {key!r}: field {name!r} is {into[name]!r} in one item text "
                           f"file and {value!r} in {part.files[0]}")
        into[name] = value
  return ItemFields(rows, tuple(names), tuple(f for p in parts for f in p.files))


# ------------------------------------------------------------------ where the text lives

def text_files(data_cfg: Any, path: str = "") -> list[str]:
  """The item text files of the dataset `data_cfg` names (see the module doc), or of
  `path` (comma-separated; relative paths are read from data.root)."""
  if path:
    root = config_lib.data_root(data_cfg)
    parts = [p.strip() for p in str(path).split(",") if p.strip()]
    return [os.path.join(root, p) if root and not os.path.isabs(p) else p for p in parts]
  fmt = data_cfg.format
  if fmt in MOVIELENS_FORMATS:
    titles = config_lib.data_path(data_cfg, "titles_path")
    if not titles:
      raise ValueError(f"item text for data.format={fmt!r} comes from data.titles_path "
                       "(movies.dat / u.item / movies.csv), which is empty")
    return [titles]
  if fmt == "s3rec":
    data_file = config_lib.data_path(data_cfg, "path")
    stem = os.path.splitext(os.path.basename(data_file))[0]
    folder = os.path.dirname(data_file)
    candidates = [os.path.join(folder, "..", "amazon-text"), folder]
    for where in candidates:
      found = [os.path.normpath(os.path.join(where, f"{stem}_{kind}.tsv"))
               for kind in ("item_text", "keywords")]
      found = [f for f in found if os.path.isfile(f)]
      if found:
        return found
    raise FileNotFoundError(
        f"no item text for s3rec data {data_file}: looked for {stem}_item_text.tsv and "
        f"{stem}_keywords.tsv in {[os.path.normpath(c) for c in candidates]}; set "
        "config.text.path")
  raise ValueError(f"data.format={fmt!r} has no built-in item text source; set "
                   "config.text.path to TSV file(s) with header 'item_id<TAB>field...'")


def item_fields(data_cfg: Any, path: str = "") -> ItemFields:
  """The text fields of every item in the dataset's text files, by raw id."""
  return _merge([_read_any(f) for f in text_files(data_cfg, path)])


# --------------------------------------------------------------------------- templates

def default_template(fields: Iterable[str]) -> str:
  """The template used when config.text.template is "": by the fields there are."""
  have = set(fields)
  if {"title", "categories"} <= have:
    return "{title}. Categories: {categories}"
  if {"title", "genres"} <= have:
    return "{title}. Genres: {genres}"
  for only in ("title", "keywords"):
    if only in have:
      return "{" + only + "}"
  example = "{" + sorted(have)[0] + "}" if have else "{title}"
  raise ValueError(f"no default item text template for fields {sorted(have)}; set "
                   f"config.text.template, e.g. {example!r}")


def placeholders(template: str) -> list[str]:
  """The field names `template` uses ("{title} ({year})" -> ["title", "year"])."""
  try:
    parsed = list(string.Formatter().parse(template))
  except ValueError as e:
    raise ValueError(f"config.text.template={template!r}: {e}") from e
  names = []
  for _, name, spec, conv in parsed:
    if name is None:
      continue
    if not name or not name.isidentifier() or spec or conv:
      raise ValueError(f"config.text.template={template!r}: placeholders are plain field "
                       f"names such as {{title}}, got {{{name}{'!' + conv if conv else ''}"
                       f"{':' + spec if spec else ''}}}")
    names.append(name)
  return names


def render(template: str, fields: dict[str, str]) -> str:
  """`template` with each {field} replaced; whitespace runs collapsed, ends stripped."""
  return " ".join(template.format_map(fields).split())


def item_texts(data_cfg: Any, dataset, template: str = "", path: str = "",
               missing: str = "raise", source: ItemFields | None = None) -> list[str]:
  """One text per dense item id of `dataset`: [""] + texts of items 1..num_items.

  `template` "" picks `default_template` of the source's fields; a placeholder the
  source lacks is an error naming the fields there are. Items without text raise
  (`missing="raise"`) or get "" (`missing="empty"`, for callers that handle cold items).
  `source`: the fields already read by `item_fields(data_cfg, path)`.
  """
  if missing not in ("raise", "empty"):
    raise ValueError(f"missing={missing!r}: expected 'raise' or 'empty'")
  if source is None:
    source = item_fields(data_cfg, path)
  template = template or default_template(source.fields)
  unknown = [n for n in placeholders(template) if n not in source.fields]
  if unknown:
    raise ValueError(f"config.text.template={template!r} uses {unknown}, which the item text "
                     f"({', '.join(source.files)}) does not have; fields: {list(source.fields)}")
  texts = [""]
  absent = []
  for raw in np.asarray(dataset.item_ids)[1:]:
    row = source.rows.get(_key(raw))
    text = render(template, row) if row is not None else ""
    if not text:
      absent.append(raw.item() if hasattr(raw, "item") else raw)
    texts.append(text)
  if absent and missing == "raise":
    listed = ", ".join(repr(a) for a in absent[:_MAX_LISTED])
    raise ValueError(f"item text: {len(absent)} of {dataset.num_items} items have no text in "
                     f"{', '.join(source.files)} with template {template!r} (raw ids {listed}"
                     f"{', ...' if len(absent) > _MAX_LISTED else ''}); is config.text.path the "
                     "text of this dataset?")
  return texts


def resolved_template(data_cfg: Any, template: str = "", path: str = "") -> str:
  """The template `item_texts` uses: `template`, or the default for the source's fields."""
  return template or default_template(item_fields(data_cfg, path).fields)


# -------------------------------------------------------------------------- attributes

@dataclasses.dataclass(frozen=True)
class ItemAttributes:
  """Attribute ids per dense item: `ids[i]` is item i's attributes, 0-padded on the right.

  `ids` [num_items + 1, A] int32 (row 0 = padding, all 0), attribute ids 1..num_attributes;
  `counts` [num_items + 1] attributes per item; `missing` items absent from the file
  (they have none).
  """

  ids: np.ndarray
  counts: np.ndarray
  num_attributes: int
  missing: int
  path: str


def attributes_file(data_cfg: Any) -> str:
  """S3-Rec's `X_item2attributes.json` beside `X.txt`."""
  data_file = config_lib.data_path(data_cfg, "path")
  stem = os.path.splitext(os.path.basename(data_file))[0]
  return os.path.join(os.path.dirname(data_file), f"{stem}_item2attributes.json")


def item_attributes(data_cfg: Any, dataset, path: str = "") -> ItemAttributes:
  """The attribute ids of every dense item from an `{raw id: [attribute ids]}` JSON file
  (`path`, else S3-Rec's `X_item2attributes.json` beside the data file)."""
  if path:
    root = config_lib.data_root(data_cfg)
    path = os.path.join(root, path) if root and not os.path.isabs(path) else path
  else:
    path = attributes_file(data_cfg)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"item attributes file not found: {path}")
  try:
    raw = json.loads(read_bytes(path).decode("utf-8"))
  except json.JSONDecodeError as e:
    raise DataFormatError(path, e.lineno, f"not valid JSON ({e.msg})") from e
  if not isinstance(raw, dict):
    raise ValueError(f"{path}: expected a JSON object {{item id: [attribute ids]}}")
  table = {}
  for k, v in raw.items():
    if not isinstance(v, list) or not all(isinstance(a, int) and a > 0 for a in v):
      raise ValueError(f"{path}: item {k!r}: expected a list of positive integer attribute "
                       f"ids, got {str(v)[:80]}")
    table[_key(k)] = v
  item_ids = np.asarray(dataset.item_ids)
  rows = [table.get(_key(r)) for r in item_ids[1:]]
  missing = sum(r is None for r in rows)
  rows = [[]] + [r or [] for r in rows]
  width = max(1, max(len(r) for r in rows))
  ids = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
  counts = np.array([len(r) for r in rows], np.int32)
  num = max((max(v) for v in table.values() if v), default=0)
  return ItemAttributes(ids=ids, counts=counts, num_attributes=int(num), missing=missing,
                        path=path)
