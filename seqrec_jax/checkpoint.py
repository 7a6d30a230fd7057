"""Orbax checkpoints: the latest train state + data iterator (to resume), and the best
model on validation (to report and serve). All Orbax calls live here.

Layout: `<workdir>/checkpoints/<step>/{state,data,meta}` and `<workdir>/best/<step>/...`
(the two best so far, so a damaged best has a fallback). A checkpoint that fails to
restore is reported by path and the next older one is tried, so a corrupt latest step
never loses the run; saving a step that a damaged earlier save left behind replaces it.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(RuntimeError):
  pass


def _manager(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=True))


class Checkpoints:
  """Latest-N resumable checkpoints plus the two newest best-on-validation ones."""

  def __init__(self, workdir: str, max_to_keep: int = 2):
    self.latest = _manager(os.path.join(workdir, "checkpoints"), max_to_keep)
    self.best = _manager(os.path.join(workdir, "best"), 2)

  @staticmethod
  def _replace_existing(manager: ocp.CheckpointManager, step: int) -> None:
    """A step already on disk here was left by an earlier run that fell back past it
    (its save was damaged or is being redone): remove it so the new save can land."""
    if step in manager.all_steps():
      logging.warning("replacing checkpoint %s", os.path.join(str(manager.directory), str(step)))
      manager.wait_until_finished()
      manager.delete(step)

  def save(self, step: int, state: Any, data_iter: Any | None, meta: dict) -> None:
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    self._replace_existing(self.latest, step)
    self.latest.save(step, args=ocp.args.Composite(**items), force=True)

  def save_best(self, step: int, params: Any, meta: dict) -> None:
    self._replace_existing(self.best, step)
    self.best.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)), force=True)

  def restore_latest(self, abstract_state: Any, data_iter: Any | None
                     ) -> tuple[Any, dict] | None:
    """(state, meta) from the newest checkpoint that restores; None if there is none.

    `data_iter` (a fresh iterator) is advanced in place to the saved position.
    """
    steps = sorted(self.latest.all_steps(), reverse=True)
    errors = []
    for step in steps:
      items = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
      if data_iter is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
      try:
        out = self.latest.restore(step, args=ocp.args.Composite(**items))
      except Exception as e:  # pylint: disable=broad-except
        path = os.path.join(str(self.latest.directory), str(step))
        logging.error("checkpoint %s could not be restored (%s: %s); trying an older one",
                      path, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        errors.append(f"{path}: {type(e).__name__}: {e}")
        continue
      return out["state"], dict(out["meta"])
    if errors:
      raise CheckpointError("no checkpoint could be restored:\n" + "\n".join(errors))
    return None

  def restore_best(self, abstract_params: Any) -> tuple[Any, dict]:
    """(params, meta) of the newest best checkpoint that restores (the previous best
    when the newest is damaged, with a one-line message naming it)."""
    steps = sorted(self.best.all_steps(), reverse=True)
    if not steps:
      raise CheckpointError(f"no best checkpoint under {self.best.directory}")
    errors = []
    for step in steps:
      path = os.path.join(str(self.best.directory), str(step))
      try:
        out = self.best.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()))
      except Exception as e:  # pylint: disable=broad-except
        first = str(e).splitlines()[0] if str(e) else ""
        logging.error("best checkpoint %s could not be restored (%s: %s); trying an older one",
                      path, type(e).__name__, first)
        errors.append(f"{path}: {type(e).__name__}: {first}")
        continue
      return out["params"], dict(out["meta"])
    raise CheckpointError("no best checkpoint could be restored:\n" + "\n".join(errors))

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()
