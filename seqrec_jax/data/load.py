"""`load_dataset`: the `data` config -> a `SequenceDataset`, via reader, filters and cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import numpy as np

from seqrec_jax import config as config_lib
from seqrec_jax.data.dataset import SequenceDataset
from seqrec_jax.data.download import ensure_movielens
from seqrec_jax.data.preprocess import PreprocessOptions, build_sequence_dataset
from seqrec_jax.data.sources import SOURCES, read_source

CACHE_VERSION = 1  # bump when readers or preprocessing change what they produce

log = logging.getLogger(__name__)


def _get(cfg: Any, name: str, default: Any = None) -> Any:
  return getattr(cfg, name, default)


def preprocess_options(data_cfg: Any) -> PreprocessOptions:
  """The filters named by the config (`min_rating < 0` means no threshold)."""
  min_rating = float(_get(data_cfg, "min_rating", -1.0))
  return PreprocessOptions(
      min_rating=None if min_rating < 0 else min_rating,
      user_core=int(_get(data_cfg, "user_core", 0)),
      item_core=int(_get(data_cfg, "item_core", 0)),
      dedup=str(_get(data_cfg, "dedup", "first")))


def reader_kwargs(data_cfg: Any) -> dict:
  """Keyword arguments of the format's reader (besides the path), from the config."""
  fmt = data_cfg.format
  kw: dict = {"on_error": str(_get(data_cfg, "on_error", "raise"))}
  if fmt == "s3rec":
    kw["time_path"] = _get(data_cfg, "time_path", "") or None
  elif fmt == "table":
    kw.update(user_col=data_cfg.user_col, item_col=data_cfg.item_col,
              time_col=data_cfg.time_col, rating_col=_get(data_cfg, "rating_col", "") or None,
              sep=_get(data_cfg, "sep", ","))
  return kw


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
      digest.update(chunk)
  return digest.hexdigest()


def fingerprint(fmt: str, files: list[str], kw: dict, opts: PreprocessOptions) -> str:
  """sha256 over everything the dataset depends on: file contents, reader, filters."""
  key = {
      "version": CACHE_VERSION,
      "format": fmt,
      "files": [{"size": os.path.getsize(p), "sha256": file_sha256(p)} for p in files],
      "reader": {k: v for k, v in kw.items() if k != "time_path"},
      "options": dataclasses.asdict(opts),
  }
  return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _input_files(data_cfg: Any) -> list[str]:
  """Existing input paths (downloading when `data.download` says so), else FileNotFoundError."""
  fmt = data_cfg.format
  path = config_lib.data_path(data_cfg, "path")  # relative: under data.root / $SEQREC_DATA
  download = str(_get(data_cfg, "download", "") or "")
  cache_dir = str(_get(data_cfg, "cache_dir", "") or "")
  if download and not (path and os.path.exists(path)):
    if not cache_dir:
      raise ValueError(f"data.download={download!r} needs data.cache_dir to download into")
    path = ensure_movielens(download, cache_dir)
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(f"data.path: no {fmt} input file at {path!r}"
                            + ("" if path else " (data.path is empty)"))
  files = [path]
  time_path = config_lib.data_path(data_cfg, "time_path") if fmt == "s3rec" else ""
  if time_path:
    if not os.path.isfile(time_path):
      raise FileNotFoundError(f"data.time_path: no file at {time_path!r}")
    files.append(time_path)
  return files


def _valid(ds: SequenceDataset) -> bool:
  return (ds.offsets.ndim == 1 and ds.offsets.size == ds.user_ids.size + 1
          and int(ds.offsets[-1]) == ds.items.size == ds.times.size
          and (ds.items.size == 0 or int(ds.items.max()) <= ds.num_items))


def load_sequences(path: str) -> SequenceDataset:
  """A `SequenceDataset.save` file (`data.format="sequences"`): dense ids and id maps as
  saved, no reader or filters (what `seqrec_jax.update` writes for each model version)."""
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(f"data.path: no sequences .npz file at {path!r}")
  try:
    ds = SequenceDataset.load(path)
  except Exception as e:  # pylint: disable=broad-except (zip, npz, json)
    raise ValueError(f"data.path: {path} is not a readable sequences .npz file "
                     f"({type(e).__name__}: {e})") from None
  if not _valid(ds):
    raise ValueError(f"data.path: {path} has inconsistent arrays (offsets, items, times, ids)")
  ds.report.update(cache="off", sequences_file=os.path.abspath(path))
  return ds


def load_dataset(data_cfg: Any) -> SequenceDataset:
  """Reads, filters and packs the dataset the `data` config names, using the cache.

  With `data.cache_dir` set, the result is kept as `<format>-<fingerprint>.npz` there and
  reused while the input files' contents, the reader settings, the filters and
  CACHE_VERSION stay the same. A cache file that cannot be read is rebuilt. `report`
  gains `cache` ('hit', 'miss' or 'off') and `cache_file`.
  """
  fmt = data_cfg.format
  opts = preprocess_options(data_cfg)
  if fmt == "synthetic":  # cheap to regenerate, and its code may change: never cached
    # Imported here: file-based runs never need the generator.
    from seqrec_jax.data import synthetic  # pylint: disable=import-outside-toplevel
    kw = _get(data_cfg, "synthetic", None) or {}
    kw = kw.to_dict() if hasattr(kw, "to_dict") else dict(kw)
    ds = build_sequence_dataset(synthetic.generate_interactions(**kw), opts)
    ds.report["cache"] = "off"
    return ds
  if fmt == "sequences":  # a SequenceDataset saved as .npz (e.g. by `update`): used as is
    return load_sequences(config_lib.data_path(data_cfg, "path"))
  if fmt not in SOURCES:
    raise ValueError(f"data.format: unknown format {fmt!r}; valid: "
                     f"{sorted(SOURCES) + ['sequences', 'synthetic']}")
  files = _input_files(data_cfg)
  kw = reader_kwargs(data_cfg)
  if kw.get("time_path"):
    kw["time_path"] = files[1]
  cache_dir = str(_get(data_cfg, "cache_dir", "") or "")
  if not cache_dir:
    ds = build_sequence_dataset(read_source(fmt, files[0], **kw), opts)
    ds.report["cache"] = "off"
    return ds

  cache_file = os.path.join(cache_dir, f"{fmt}-{fingerprint(fmt, files, kw, opts)[:24]}.npz")
  if os.path.exists(cache_file):
    try:
      ds = SequenceDataset.load(cache_file)
      if not _valid(ds):
        raise ValueError("inconsistent arrays")
      ds.report.update(cache="hit", cache_file=cache_file)
      log.info("data: loaded cached %s", cache_file)
      return ds
    except Exception as e:  # pylint: disable=broad-except
      log.warning("data: cache file %s is unreadable (%s: %s); rebuilding it", cache_file,
                  type(e).__name__, e)
  ds = build_sequence_dataset(read_source(fmt, files[0], **kw), opts)
  os.makedirs(cache_dir, exist_ok=True)
  ds.report["input_files"] = [os.path.abspath(p) for p in files]
  try:
    ds.save(cache_file)
  except OSError as e:  # a read-only or full disk costs a rebuild next time, nothing more
    log.warning("data: could not write cache file %s: %s", cache_file, e)
  ds.report.update(cache="miss", cache_file=cache_file)
  log.info("data: built %s (%d users, %d items, %d interactions)", cache_file,
           ds.num_users, ds.num_items, int(np.asarray(ds.offsets)[-1]))
  return ds
