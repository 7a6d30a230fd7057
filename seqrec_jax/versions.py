"""Model versions of a run: what `seqrec_jax.update` writes and the service serves.

Layout: the trained run `<workdir>` is version 0; each update writes a complete run
directory `<workdir>/versions/<NNNN>/` (config.json pointing at its own
`dataset.npz`, checkpoints, best, final.json, update.json) and only then publishes it
by replacing `<workdir>/versions/LATEST` (one line: the version's name) atomically.
A version is never modified after it is published, so an update can never damage the
model being served, and a killed update leaves at most an unpublished directory (the
next update resumes it when it was for the same base and events).
"""

from __future__ import annotations

import os
import re

VERSIONS = "versions"
LATEST = "LATEST"
_NAME = re.compile(r"^\d{4,}$")


def versions_dir(workdir: str) -> str:
  return os.path.join(workdir, VERSIONS)


def latest_name(workdir: str) -> str:
  """The published version's name ("" = the run itself, version 0)."""
  path = os.path.join(versions_dir(workdir), LATEST)
  if not os.path.exists(path):
    return ""
  with open(path) as f:
    name = f.read().strip()
  if not _NAME.match(name) or not os.path.isdir(os.path.join(versions_dir(workdir), name)):
    raise ValueError(f"{path}: names version {name!r}, which is not a version directory there")
  return name


def latest(workdir: str) -> str:
  """The directory of the newest published version of the run in `workdir`."""
  name = latest_name(workdir)
  return os.path.join(versions_dir(workdir), name) if name else workdir


def names(workdir: str) -> list[str]:
  """Every version directory's name (published or not), oldest first."""
  d = versions_dir(workdir)
  if not os.path.isdir(d):
    return []
  return sorted((n for n in os.listdir(d) if _NAME.match(n) and os.path.isdir(os.path.join(d, n))),
                key=int)


def next_name(workdir: str) -> str:
  """The name after every existing version directory."""
  existing = names(workdir)
  return f"{int(existing[-1]) + 1 if existing else 1:04d}"


def publish(workdir: str, name: str) -> None:
  """Makes version `name` the one `latest` returns (atomic replace, fsync'd)."""
  d = versions_dir(workdir)
  if not os.path.isdir(os.path.join(d, name)):
    raise FileNotFoundError(f"no version directory {os.path.join(d, name)}")
  tmp = os.path.join(d, f".{LATEST}.tmp")
  with open(tmp, "w") as f:
    f.write(name + "\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(d, LATEST))
  fd = os.open(d, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)
