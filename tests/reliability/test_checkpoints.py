"""Checkpoints that cannot trap a run (fast, in-process, tiny pytrees).

Damaged or partial latest / best checkpoints are skipped with one line naming the path
and set aside; saving a step that already exists replaces it; an unwritable or full
checkpoint folder raises CheckpointWriteError at once (never a hang) and leaves the
previous checkpoint restorable. The full-disk and read-only cases mount a small tmpfs
(root only; skipped elsewhere).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import checkpoint


def state(step: int, size: int = 64):
  return {"w": jnp.full((size,), float(step)), "step": jnp.int32(step)}


def abstract(size: int = 64):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state(0, size))


def save_steps(workdir, steps, best=(), max_to_keep=3, size=64):
  c = checkpoint.Checkpoints(str(workdir), max_to_keep)
  for s in steps:
    c.save(s, state(s, size), None, {"step": s})
  for s in best:
    c.save_best(s, state(s, size), {"step": s, "epoch": s, "valid": {}})
  c.wait()
  c.close()


def files_under(path):
  return [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]


def arrays(d):
  """The array item of a step folder: `state` (latest) or `params` (best)."""
  return d / "state" if (d / "state").exists() else d / "params"


DAMAGE = {
    "truncated arrays": lambda d: [open(f, "wb").close() for f in files_under(arrays(d))
                                   if "ocdbt" in f or "/d/" in f],
    "garbage meta": lambda d: [open(f, "w").write("{not json") for f in files_under(d / "meta")],
    "missing state": lambda d: shutil.rmtree(arrays(d)),
    "random bytes": lambda d: [open(f, "wb").write(os.urandom(max(os.path.getsize(f), 8)))
                               for f in files_under(arrays(d))],
    "empty folder": lambda d: [shutil.rmtree(p) if p.is_dir() else p.unlink()
                               for p in list(d.iterdir())],
}


# One damage kind runs in the fast default suite; the rest with -m reliability.
KINDS = [k if k == "truncated arrays" else pytest.param(k, marks=pytest.mark.reliability)
         for k in sorted(DAMAGE)]
SLOW = pytest.mark.reliability


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_latest_falls_back_with_one_line_naming_it(tmp_path, kind, caplog):
  save_steps(tmp_path, [1, 2, 3])
  newest = tmp_path / "checkpoints" / "3"
  DAMAGE[kind](newest)
  c = checkpoint.Checkpoints(str(tmp_path), 3)
  with caplog.at_level(logging.ERROR):
    restored, meta = c.restore_latest(abstract(), None)
  assert int(restored["step"]) == 2 and meta == {"step": 2}
  lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
  assert len(lines) == 1 and str(newest) in lines[0] and "\n" not in lines[0], lines
  assert (tmp_path / "checkpoints" / "3.damaged").is_dir()  # set aside, kept to inspect
  # The run goes on: saving step 3 again lands, and it is the newest from then on.
  c.save(3, state(3), None, {"step": 3})
  c.wait()
  assert int(c.restore_latest(abstract(), None)[0]["step"]) == 3
  c.close()


@SLOW
@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_best_falls_back_to_the_previous_best(tmp_path, kind, caplog):
  save_steps(tmp_path, [4], best=[2, 4])
  DAMAGE[kind](tmp_path / "best" / "4")
  c = checkpoint.Checkpoints(str(tmp_path), 3)
  with caplog.at_level(logging.ERROR):
    params, meta = c.restore_best(abstract())
  assert meta["step"] == 2 and float(params["w"][0]) == 2.0
  assert any(str(tmp_path / "best" / "4") in r.getMessage() for r in caplog.records)
  c.close()


@SLOW
def test_every_checkpoint_damaged_names_each_path(tmp_path):
  save_steps(tmp_path, [1, 2], best=[1, 2])
  for sub in ("checkpoints", "best"):
    for s in (1, 2):
      DAMAGE["missing state" if s == 1 else "truncated arrays"](tmp_path / sub / str(s))
  c = checkpoint.Checkpoints(str(tmp_path), 3)
  with pytest.raises(checkpoint.CheckpointError) as e:
    c.restore_latest(abstract(), None)
  assert str(tmp_path / "checkpoints" / "1") in str(e.value)
  assert str(tmp_path / "checkpoints" / "2") in str(e.value)
  with pytest.raises(checkpoint.CheckpointError, match="best"):
    c.restore_best(abstract())
  c.close()


@SLOW
def test_half_written_save_of_a_killed_run_is_ignored(tmp_path):
  save_steps(tmp_path, [1])
  partial = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-1234"
  partial.mkdir()
  (partial / "junk").write_text("x")
  c = checkpoint.Checkpoints(str(tmp_path), 3)
  assert int(c.restore_latest(abstract(), None)[0]["step"]) == 1
  c.save(2, state(2), None, {"step": 2})
  c.wait()
  assert int(c.restore_latest(abstract(), None)[0]["step"]) == 2
  c.close()


@SLOW
def test_saving_over_an_existing_step_replaces_it(tmp_path):
  save_steps(tmp_path, [5], best=[5])
  c = checkpoint.Checkpoints(str(tmp_path), 3)
  c.save(5, state(50), None, {"step": 5, "again": True})
  c.save_best(5, state(51), {"step": 5, "epoch": 1, "valid": {}})
  c.wait()
  st, meta = c.restore_latest(abstract(), None)
  assert float(st["w"][0]) == 50.0 and meta["again"]
  assert float(c.restore_best(abstract())[0]["w"][0]) == 51.0
  c.close()


@SLOW
def test_two_best_checkpoints_are_kept(tmp_path):
  save_steps(tmp_path, [], best=[1, 2, 3])
  assert sorted(p.name for p in (tmp_path / "best").iterdir() if p.name.isdigit()) == ["2", "3"]


# ---- unwritable and full folders (a small tmpfs; needs root) ----------------------------

@pytest.fixture
def tmpfs(tmp_path):
  mounted = []

  def mount(path, size="256k", ro=False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, f"seqrec-{uuid.uuid4().hex[:6]}",
                          str(path)], capture_output=True, text=True)
    if out.returncode != 0:
      pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip()[:80]})")
    mounted.append(path)
    return path

  def remount(path, opts):
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True)

  mount.remount = remount
  yield mount
  for p in reversed(mounted):
    subprocess.run(["umount", "-l", str(p)], capture_output=True)


def test_read_only_checkpoint_folder_fails_at_once(tmp_path, tmpfs):
  tmpfs(tmp_path / "checkpoints", ro=True)
  t0 = time.time()
  with pytest.raises(checkpoint.CheckpointWriteError, match="not writable") as e:
    checkpoint.Checkpoints(str(tmp_path), 2).ensure_writable()
  assert str(tmp_path / "checkpoints") in str(e.value) and time.time() - t0 < 10


@SLOW
def test_folder_turned_read_only_mid_run_stops_the_next_save(tmp_path, tmpfs):
  folder = tmpfs(tmp_path / "checkpoints", size="4m")
  c = checkpoint.Checkpoints(str(tmp_path), 2)
  c.save(1, state(1), None, {"step": 1})
  c.wait()
  tmpfs.remount(folder, "ro")
  t0 = time.time()
  with pytest.raises(checkpoint.CheckpointWriteError) as e:
    c.save(2, state(2), None, {"step": 2})
    c.wait()
  assert time.time() - t0 < 30
  msg = str(e.value)
  assert "Read-only file system" in msg and str(folder / "1") in msg and "\n" not in msg
  tmpfs.remount(folder, "rw")
  again = checkpoint.Checkpoints(str(tmp_path), 2)
  assert int(again.restore_latest(abstract(), None)[0]["step"]) == 1  # intact
  again.close()


@SLOW
def test_full_disk_stops_with_a_clear_error_and_keeps_the_previous_step(tmp_path, tmpfs):
  folder = tmpfs(tmp_path / "checkpoints", size="600k")
  c = checkpoint.Checkpoints(str(tmp_path), 5)
  big = 40_000  # ~160 KB of float32 per save: the third or fourth does not fit
  t0 = time.time()
  saved = []
  with pytest.raises(checkpoint.CheckpointWriteError) as e:
    for s in range(1, 20):
      c.save(s, {"w": jax.random.normal(jax.random.key(s), (big,)), "step": jnp.int32(s)},
             None, {"step": s})
      c.check()
      saved.append(s)
    c.wait()
  assert time.time() - t0 < 60
  msg = str(e.value)
  assert "No space left on device" in msg and str(folder) in msg, msg
  for f in folder.iterdir():  # make room, then the newest complete step restores
    if "tmp" in f.name:
      shutil.rmtree(f)
  again = checkpoint.Checkpoints(str(tmp_path), 5)
  abstract_big = {"w": jax.ShapeDtypeStruct((big,), jnp.float32),
                  "step": jax.ShapeDtypeStruct((), jnp.int32)}
  restored, meta = again.restore_latest(abstract_big, None)
  assert int(restored["step"]) == meta["step"] >= 1 and meta["step"] in saved + [saved[-1] + 1]
  again.close()
