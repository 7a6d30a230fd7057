"""How many training entries `task.windows="cover"` makes per epoch (RESULTS.md's 4,250).

  python benchmarks/cover_windows_count.py [--config=configs/sasrec_ml1m.py]

Loads the config's dataset and leave-one-out split and counts the entries of the
training source with one window per user and with cover windows (a history of n items
appears ceil((n - 1) / max_len) times), as the trainer builds them. No model, no training.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.data.dataset import leave_one_out  # noqa: E402
from seqrec_jax.data.load import load_dataset  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/sasrec_ml1m.py")
  args = parser.parse_args()
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, args.config))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  cfg = mod.get_config()
  split = leave_one_out(load_dataset(cfg.data), cfg.data.leave_last_k)
  one = len(pipeline.TrainSequences(split))
  cover = len(pipeline.TrainSequences(split, cover_window=cfg.model.max_len))
  print(json.dumps({"config": args.config, "max_len": cfg.model.max_len,
                    "users": split.data.num_users, "entries_one_window": one,
                    "entries_cover": cover}))


if __name__ == "__main__":
  main()
