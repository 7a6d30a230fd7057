"""Incremental update: new interactions in, a new model version out.

`update(workdir, events_path)` takes the run's published version (`versions.latest`),
appends the events (`data/events.py`: new users and items get the next free ids, so
the old rows stay aligned), saves the extended dataset in a new version directory,
and fine-tunes there with the one engine from the base version's latest train state
(`train.init_from`: parameters and optimizer moments, item tables grown by fresh rows)
for a budget of `epochs`. Only a finished version is published; the base is never
written. Killed, the same command resumes the unpublished version.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections
from absl import logging

from seqrec_jax import config as config_lib
from seqrec_jax import versions
from seqrec_jax.data import events as events_lib
from seqrec_jax.data.load import file_sha256, load_dataset
from seqrec_jax.infer.recommend import titles_path
from seqrec_jax.train import engine
from seqrec_jax.train import mle  # noqa: F401  (registers the "mle" objective)


def update_config(base_cfg: ml_collections.ConfigDict, base_dir: str, dataset_path: str,
                  epochs: int, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """The fine-tuning config: the base run's, on the extended dataset, warm-started from
  the base, for `epochs` epochs; `overrides` ({"optim.lr": 3e-4, ...}) last."""
  cfg = ml_collections.ConfigDict(base_cfg.to_dict())
  titles = titles_path(base_cfg)
  cfg.data.format, cfg.data.root = "sequences", ""
  cfg.data.path = os.path.abspath(dataset_path)
  cfg.data.titles_path = os.path.abspath(titles) if titles else ""
  cfg.train.init_from = os.path.abspath(base_dir)
  cfg.train.num_epochs = int(epochs)
  cfg.train.eval_every_epochs = min(cfg.train.eval_every_epochs, int(epochs))
  cfg.train.patience = 0
  cfg.train.max_steps_this_run = 0
  if overrides:
    cfg.update_from_flattened_dict(dict(overrides))
  return cfg


def _resumable(vdir: str, key: dict) -> bool:
  """An unpublished version directory left by a killed update of the same base and events."""
  path = os.path.join(vdir, "update.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError:
      return False
  return all(saved.get(k) == v for k, v in key.items())


def update(workdir: str, events_path: str, *, epochs: int = 2, overrides: dict | None = None,
           kinds: tuple[str, ...] = events_lib.POSITIVE_EVENTS) -> dict[str, Any]:
  """Fine-tunes a new version of the run in `workdir` on the events in `events_path`;
  -> {"version", "dir", "base", "events": report, "report": final report, "seconds"}.
  {"interrupted_at_step": ...} in "report" means it stopped early (unpublished)."""
  t0 = time.time()
  base_name = versions.latest_name(workdir)
  base_dir = versions.latest(workdir)
  base_cfg = config_lib.load_config(base_dir)
  if base_cfg.gan.enabled:
    raise ValueError(f"{base_dir}: updating adversarial (config.gan) runs is not supported; "
                     "update an MLE run")
  ev = events_lib.read_events_file(events_path)
  key = {"base": os.path.abspath(base_dir), "events_sha256": file_sha256(events_path),
         "epochs": int(epochs),  # a time slice of the same update resumes it
         "overrides": {k: v for k, v in (overrides or {}).items()
                       if k != "train.max_steps_this_run"}}
  existing = versions.names(workdir)
  newest = existing[-1] if existing else ""
  if newest and int(newest) > int(base_name or 0) and _resumable(
      os.path.join(versions.versions_dir(workdir), newest), key):
    name = newest
    logging.info("update: resuming unpublished version %s", name)
  else:
    name = versions.next_name(workdir)
  vdir = os.path.join(versions.versions_dir(workdir), name)
  os.makedirs(vdir, exist_ok=True)
  dataset_path = os.path.join(vdir, "dataset.npz")

  base_data = load_dataset(base_cfg.data)
  min_rating = base_cfg.data.min_rating if base_cfg.data.min_rating >= 0 else None
  keep, skipped = events_lib.positive(ev, kinds, min_rating)
  data, report = events_lib.extend_dataset(base_data, ev, keep, base_cfg.data.dedup)
  report.update(skipped)
  if report["used"] == 0:
    raise ValueError(f"{events_path}: no new interactions ({len(ev)} events: "
                     f"{report['not_positive_event']} not positive, {report['below_min_rating']} "
                     f"below data.min_rating, {report['dedup_dropped']} already in the history)")
  data.save(dataset_path)
  logging.info("update: %d events -> %d new interactions, %d new users, %d new items "
               "(base %s, version %s)", len(ev), report["used"], report["new_users"],
               report["new_items"], base_name or "0", name)
  cfg = update_config(base_cfg, base_dir, dataset_path, epochs, overrides)
  with open(os.path.join(vdir, "update.json.tmp"), "w") as f:
    json.dump({**key, "base_version": base_name or "0", "events_path": os.path.abspath(events_path),
               "events": report}, f, indent=2, default=str)
  os.replace(os.path.join(vdir, "update.json.tmp"), os.path.join(vdir, "update.json"))

  final = engine.run(cfg, vdir, "mle")
  out = {"version": name, "dir": vdir, "base": base_dir, "events": report, "report": final,
         "seconds": time.time() - t0}
  if "interrupted_at_step" not in final:
    versions.publish(workdir, name)
    logging.info("update: published version %s (%.1fs)", name, out["seconds"])
  return out
