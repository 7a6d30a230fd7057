"""Orbax checkpoints: the latest train state + data iterator (to resume), and the best
model on validation (to report and serve). All Orbax calls live here.

Layout: `<workdir>/checkpoints/<step>/{state,data,meta}` and `<workdir>/best/<step>/...`
(the two best so far, so a damaged best has a fallback).

Failure handling (docs/reliability.md):
  * A checkpoint that fails to restore is reported in one line naming its path, moved
    aside to `<step>.damaged` (so it can never shadow a good one again), and the next
    older one is tried: a damaged latest step never loses the run.
  * Saving a step that a damaged or abandoned earlier save left behind replaces it.
  * Both folders are probed for writability when training starts, step directories are
    created in the calling thread, and a background write that fails (full disk,
    read-only mount) is raised at the next `check()`, `save()` or `wait()` as a
    `CheckpointWriteError` naming the folder, the reason and the newest checkpoint that
    is still intact: never a silent loss, never a hang.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import grain
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(RuntimeError):
  """No checkpoint could be restored (each tried path is named)."""


class CheckpointWriteError(CheckpointError):
  """A checkpoint could not be written; the previous ones are intact."""


def _manager(directory: str, max_to_keep: int, read_only: bool = False
             ) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=not read_only, enable_async_checkpointing=True,
          # half-written saves of a killed run (never in another run's folder)
          cleanup_tmp_directories=not read_only,
          # Create step folders in the calling thread: on a read-only folder the error is
          # raised here at once (asynchronously, the main thread waits for a signal the
          # failed background thread never sends).
          async_options=ocp.AsyncOptions(create_directories_asynchronously=False)))


_ERRNO = re.compile(r"(\[Errno \d+\] [^\n:'\"]+|No space left on device|Read-only file system|"
                    r"Permission denied|Disk quota exceeded)")


def reason(e: BaseException) -> str:
  """A one-line reason for an exception from Orbax / TensorStore (which can be long)."""
  text = str(e)
  m = _ERRNO.search(text)
  if m:
    return m.group(1)
  first = text.splitlines()[0] if text else ""
  return f"{type(e).__name__}: {first[:200]}"


def probe_writable(directory: str) -> None:
  """Creates `directory` and writes, syncs and removes a small file in it; raises
  CheckpointWriteError naming the folder when that fails (unwritable, full)."""
  probe = os.path.join(directory, f".write_probe.{os.getpid()}")
  try:
    os.makedirs(directory, exist_ok=True)
    with open(probe, "wb") as f:
      f.write(b"\0" * 65536)
      f.flush()
      os.fsync(f.fileno())
    os.remove(probe)
  except OSError as e:
    try:
      os.remove(probe)
    except OSError:
      pass
    raise CheckpointWriteError(
        f"checkpoint folder {directory} is not writable ({e.strerror or e}); free space or "
        "fix its permissions, then run the same command") from None


class Checkpoints:
  """Latest-N resumable checkpoints plus the two newest best-on-validation ones."""

  def __init__(self, workdir: str, max_to_keep: int = 2, read_only: bool = False):
    """`read_only`: only restore, and never move a damaged step aside (another run's
    checkpoints, e.g. the model version an update starts from)."""
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep={max_to_keep} must be >= 1")
    self.read_only = read_only
    self.dirs = os.path.join(workdir, "checkpoints"), os.path.join(workdir, "best")
    self.latest = _manager(self.dirs[0], max_to_keep, read_only)
    self.best = _manager(self.dirs[1], 2, read_only)

  def ensure_writable(self) -> None:
    """Raises CheckpointWriteError now if either folder cannot be written (a training run
    calls this before it trains; readers of a finished run on a read-only disk don't)."""
    for d in self.dirs:
      probe_writable(d)

  # ---- writing ----------------------------------------------------------------------

  def _write_error(self, manager: ocp.CheckpointManager, e: BaseException,
                   step: int | None) -> CheckpointWriteError:
    folder = str(manager.directory)
    what = f"step {step} to {folder}" if step is not None else f"to {folder}"
    good = [s for s in manager.all_steps() if s != step]
    kept = (f"the newest intact checkpoint is {os.path.join(folder, str(max(good)))}"
            if good else "no earlier checkpoint there")
    return CheckpointWriteError(f"could not write checkpoint {what} ({reason(e)}); {kept}. "
                                "Free space or fix the folder, then run the same command")

  def _guard(self, manager: ocp.CheckpointManager, fn, step: int | None = None) -> Any:
    try:
      return fn()
    except CheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except (Orbax, TensorStore, OSError)
      try:  # the failed save's step is not a checkpoint
        manager.reload()
      except Exception:  # pylint: disable=broad-except
        pass
      raise self._write_error(manager, e, step) from None

  def check(self) -> None:
    """Raises CheckpointWriteError if a background save has failed (cheap)."""
    for manager in (self.latest, self.best):
      self._guard(manager, manager.check_for_errors)

  def _replace_existing(self, manager: ocp.CheckpointManager, step: int) -> None:
    """A step already on disk here was left by an earlier run that fell back past it
    (its save was damaged or is being redone): remove it so the new save can land."""
    if step in manager.all_steps():
      logging.warning("replacing checkpoint %s", os.path.join(str(manager.directory), str(step)))
      manager.wait_until_finished()
      manager.delete(step)

  def _save(self, manager: ocp.CheckpointManager, step: int, items: dict) -> None:
    if self.read_only:
      raise CheckpointWriteError(f"{manager.directory} was opened read-only")

    def go():
      manager.check_for_errors()  # a failed earlier save stops the run here
      self._replace_existing(manager, step)
      manager.save(step, args=ocp.args.Composite(**items), force=True)
    self._guard(manager, go, step)

  def save(self, step: int, state: Any, data_iter: Any | None, meta: dict) -> None:
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    self._save(self.latest, step, items)

  def save_best(self, step: int, params: Any, meta: dict) -> None:
    self._save(self.best, step, {"params": ocp.args.StandardSave(params),
                                 "meta": ocp.args.JsonSave(meta)})

  def wait(self) -> None:
    """Blocks until every save has landed; a failed one raises CheckpointWriteError."""
    for manager in (self.latest, self.best):
      self._guard(manager, manager.wait_until_finished)
    self.check()

  def close(self) -> None:
    for manager in (self.latest, self.best):
      self._guard(manager, manager.close)

  # ---- reading ----------------------------------------------------------------------

  def _set_aside(self, manager: ocp.CheckpointManager, step: int) -> None:
    """Renames a damaged step folder to `<step>.damaged[.N]` (kept for inspection, no
    longer a step) so later saves and restores never meet it again."""
    import jax  # pylint: disable=import-outside-toplevel
    path = os.path.join(str(manager.directory), str(step))
    if self.read_only or jax.process_index() != 0 or not os.path.isdir(path):
      return
    target, n = path + ".damaged", 1
    while os.path.exists(target):
      target, n = f"{path}.damaged.{n}", n + 1
    try:
      os.rename(path, target)
      manager.reload()
      logging.warning("moved damaged checkpoint %s to %s", path, target)
    except OSError as e:
      logging.warning("could not move damaged checkpoint %s aside: %s", path, e)

  def _restore_newest(self, manager: ocp.CheckpointManager, what: str, items) -> Any | None:
    """The newest step of `manager` that restores (each failure one logged line), else
    None; raises CheckpointError listing every failure when there were steps but none
    restored."""
    errors = []
    for step in sorted(manager.all_steps(), reverse=True):
      path = os.path.join(str(manager.directory), str(step))
      t0 = time.time()
      try:
        out = manager.restore(step, args=ocp.args.Composite(**items()))
      except Exception as e:  # pylint: disable=broad-except
        logging.error("%s %s is damaged and was skipped (%s)", what, path, reason(e))
        errors.append(f"{path}: {reason(e)}")
        self._set_aside(manager, step)
        continue
      if errors:
        logging.warning("%s: resuming from %s (%.1fs)", what, path, time.time() - t0)
      return out
    if errors:
      raise CheckpointError(f"no {what} could be restored: " + "; ".join(errors))
    return None

  def restore_latest(self, abstract_state: Any, data_iter: Any | None
                     ) -> tuple[Any, dict] | None:
    """(state, meta) from the newest checkpoint that restores; None if there is none.

    `data_iter` (a fresh iterator) is advanced in place to the saved position.
    """
    def items():
      out = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
      if data_iter is not None:
        out["data"] = grain.checkpoint.CheckpointRestore(data_iter)
      return out
    out = self._restore_newest(self.latest, "checkpoint", items)
    return None if out is None else (out["state"], dict(out["meta"]))

  def restore_best(self, abstract_params: Any) -> tuple[Any, dict]:
    """(params, meta) of the newest best checkpoint that restores (the previous best
    when the newest is damaged, with a one-line message naming it)."""
    if not self.best.all_steps():
      raise CheckpointError(f"no best checkpoint under {self.best.directory}")
    out = self._restore_newest(self.best, "best checkpoint", lambda: {
        "params": ocp.args.StandardRestore(abstract_params), "meta": ocp.args.JsonRestore()})
    return out["params"], dict(out["meta"])
