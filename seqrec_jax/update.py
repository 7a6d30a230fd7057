"""`python -m seqrec_jax.update --workdir=DIR --events=FILE [--epochs=2
--kinds=view,click,... --config.optim.lr=3e-4 ...]`.

Appends the events (CSV with a `user,item[,time,event,value]` header, JSON lines, or
the service's `feedback.jsonl`) to the data of the run's published model version,
extends the id maps for unknown users and items, fine-tunes from the version's latest
train state for `--epochs` and publishes the result as `DIR/versions/NNNN`
(`seqrec_jax/train/update.py`). The version it starts from is left untouched; a
service started with `--workdir=DIR` switches to the new version without a restart.
`--config.a.b=v` overrides fields of the fine-tuning config (e.g. the learning rate).
"""

from __future__ import annotations

import json

from absl import app, flags

from seqrec_jax import cli
from seqrec_jax.config_cli import define_overrides, overrides
from seqrec_jax.data.events import POSITIVE_EVENTS

_WORKDIR = flags.DEFINE_string("workdir", None, "The trained run's directory.")
_EVENTS = flags.DEFINE_string("events", None, "New events: .csv, .jsonl or feedback.jsonl.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Fine-tuning budget in epochs over the new data.")
_KINDS = flags.DEFINE_list("kinds", list(POSITIVE_EVENTS),
                           "Event types that count as interactions.")
_CONFIG = define_overrides("config", "--config.a.b=v overrides a field of the fine-tuning "
                           "config (the base run's own, otherwise).")
flags.mark_flags_as_required(["workdir", "events"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _EPOCHS.value < 1:
    raise app.UsageError(f"--epochs={_EPOCHS.value} must be >= 1")
  from seqrec_jax.train.update import update  # pylint: disable=import-outside-toplevel
  out = update(_WORKDIR.value, _EVENTS.value, epochs=_EPOCHS.value,
               overrides=overrides(_CONFIG), kinds=tuple(_KINDS.value))
  rep, final = out["events"], out["report"]
  print(f"events: {rep['events']} read, {rep['used']} new interactions, {rep['new_users']} new "
        f"users, {rep['new_items']} new items, {rep['dedup_dropped']} repeats dropped, "
        f"{rep['not_positive_event']} not positive")
  if "interrupted_at_step" in final:
    print(f"stopped at step {final['interrupted_at_step']} ({final['reason']}); version "
          f"{out['version']} is not published: run the same command again to resume")
    return
  print(f"published version {out['version']}: {out['dir']} ({out['seconds']:.1f}s)")
  if final.get("test"):
    print("test " + json.dumps({k: round(v, 4) for k, v in final["test"].items()
                                if k in ("hr@10", "ndcg@10", "excl/hr@10", "excl/ndcg@10")}))


if __name__ == "__main__":
  cli.run(main)
