"""Fetches pinned MovieLens archives into a cache folder, only when not already there."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


class ChecksumError(ValueError):
  """A downloaded archive's sha256 is not the pinned one."""


@dataclasses.dataclass(frozen=True)
class Archive:
  """One pinned GroupLens archive `<name>.zip` that unpacks into the folder `<name>/`."""

  name: str
  sha256: str  # of the .zip
  ratings: str  # ratings file, relative to the cache folder
  fmt: str  # `sources.read_source` format of the ratings file
  titles: str  # item-title file, relative to the cache folder


# sha256 digests as published by several independent projects that downloaded these
# archives; GroupLens itself publishes only MD5 sidecars (`<name>.zip.md5`), noted here.
ARCHIVES: dict[str, Archive] = {
    "ml-100k": Archive(  # md5 0e33842e24a9c977be4e0107933c0723, 4,924,029 bytes
        "ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        "ml-100k/u.data", "ml100k", "ml-100k/u.item"),
    "ml-1m": Archive(  # md5 c4d9eecfca2ab87c1945afe126590906
        "ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        "ml-1m/ratings.dat", "movielens", "ml-1m/movies.dat"),
    "ml-20m": Archive(  # md5 cd245b17a1ae2cc31bb14903e1204af3, 198,702,078 bytes
        "ml-20m", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        "ml-20m/ratings.csv", "movielens_csv", "ml-20m/movies.csv"),
}


def ensure_movielens(name: str, cache_dir: str, *, base_url: str = DEFAULT_BASE_URL,
                     fetch: bool = True, checksums: dict[str, str] | None = None,
                     timeout: float = 60.0) -> str:
  """Path of archive `name`'s ratings file in `cache_dir`, downloading it if missing.

  A ratings file already extracted is returned without touching the network. Otherwise
  `<base_url>/<name>.zip` is streamed to a temp file in `cache_dir`, checked against the
  pinned sha256 (`checksums[name]` overrides it, for tests), and unpacked into a temp
  folder that is then renamed into place, so a crash never leaves a half-written folder.
  """
  if name not in ARCHIVES:
    raise ValueError(f"unknown MovieLens archive {name!r}; known: {sorted(ARCHIVES)}")
  arch = ARCHIVES[name]
  target = os.path.join(cache_dir, arch.ratings)
  if os.path.isfile(target):
    return target
  if not fetch:
    raise FileNotFoundError(f"{target} is missing and downloading is off (fetch=False)")
  os.makedirs(cache_dir, exist_ok=True)
  url = base_url.rstrip("/") + f"/{name}.zip"
  expected = (checksums or {}).get(name, arch.sha256)
  archive = _download(url, cache_dir, expected, timeout)
  try:
    _extract(archive, cache_dir, name)
  finally:
    os.remove(archive)
  if not os.path.isfile(target):
    raise FileNotFoundError(f"{url} unpacked, but it has no {arch.ratings}")
  return target


def _download(url: str, cache_dir: str, expected_sha256: str, timeout: float) -> str:
  """Streams `url` to a temp file in `cache_dir`; returns it once its sha256 matches."""
  fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".zip.part", dir=cache_dir)
  digest = hashlib.sha256()
  size = 0
  try:
    log.info("downloading %s", url)
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
      while chunk := resp.read(_CHUNK):
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    actual = digest.hexdigest()
    if actual != expected_sha256.lower():
      raise ChecksumError(f"checksum mismatch for {url}: expected sha256 {expected_sha256}, "
                          f"got {actual} ({size} bytes); the download was deleted")
  except urllib.error.URLError as e:
    _remove(tmp)
    raise OSError(f"could not download {url}: {e}") from e
  except BaseException:
    _remove(tmp)
    raise
  log.info("downloaded %s (%d bytes, sha256 ok)", url, size)
  return tmp


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


def _extract(archive: str, cache_dir: str, name: str) -> None:
  """Unpacks the `name/` folder of `archive` into `cache_dir` via a temp folder + rename."""
  staging = tempfile.mkdtemp(prefix=f".{name}-extract-", dir=cache_dir)
  try:
    with zipfile.ZipFile(archive) as zf:
      members = [m for m in zf.namelist() if m.startswith(f"{name}/")]
      for m in members:
        parts = m.split("/")
        if os.path.isabs(m) or ".." in parts or "\\" in m:
          raise ValueError(f"{archive}: refusing unsafe member path {m!r}")
      zf.extractall(staging, members=members)
    src, dst = os.path.join(staging, name), os.path.join(cache_dir, name)
    if not os.path.isdir(src):
      raise FileNotFoundError(f"{archive} has no folder {name}/")
    try:
      os.rename(src, dst)  # atomic; fails if dst exists (e.g. a partial earlier copy)
    except OSError:
      _merge(src, dst)
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _merge(src: str, dst: str) -> None:
  """Moves files of `src` missing from `dst` into it, one atomic rename each."""
  for root, _, files in os.walk(src):
    rel = os.path.relpath(root, src)
    os.makedirs(os.path.join(dst, rel), exist_ok=True)
    for f in files:
      target = os.path.join(dst, rel, f)
      if not os.path.exists(target):
        os.replace(os.path.join(root, f), target)
