"""Runs RecBole 1.2.1's SASRec inside RecBole's own venv (never imports seqrec_jax).

Called by compare_recbole.py and time_to_quality.py as
  <recbole-venv>/bin/python benchmarks/recbole_worker.py '<json args>'
and prints one JSON line (prefixed `RESULT `) with what it measured:

  mode "throughput": `warmup` batches, then `batches` timed batches of RecBole's own
    `Trainer._train_epoch` (data loader, forward, backward, Adam step) -> training
    targets/s (RecBole's SASRec trains one target per sample: the item after the prefix).
  mode "ttq": epochs of `_train_epoch` + `_valid_epoch` until valid NDCG@10 >= target or
    `max_seconds` -> wall time from before dataset creation (the whole cost) and per epoch.

Two fixes make RecBole 1.2.1 run, and run at its real speed, on current libraries:
aliases for the names NumPy 2 removed (np.float, np.float_, np.complex_, np.unicode_,
np.bool8, ...), and autograd anomaly detection switched off (importing
recbole.model.sequential_recommender.sine calls torch.autograd.set_detect_anomaly(True)
at module level, which slows every backward pass severalfold).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

for _name, _value in {"float": float, "int": int, "bool": bool, "object": object, "str": str,
                      "long": int, "float_": np.float64, "complex_": np.complex128,
                      "unicode_": np.str_, "bool8": np.bool_, "string_": np.bytes_,
                      "int_": np.int64}.items():
  if _name not in np.__dict__:
    setattr(np, _name, _value)

import torch  # noqa: E402

_set_anomaly = torch.autograd.set_detect_anomaly
torch.autograd.set_detect_anomaly = lambda *a, **k: None  # RecBole may not switch it on

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

_set_anomaly(False)


class Bounded:
  """The first `n` batches of a RecBole data loader (counts the samples it yields)."""

  def __init__(self, loader, n: int):
    self.loader, self.n, self.samples, self.batches = loader, n, 0, 0
    self.shuffle = getattr(loader, "shuffle", False)
    self.sampler = getattr(loader, "sampler", None)

  def __len__(self) -> int:
    return min(self.n, len(self.loader))

  def __iter__(self):
    for i, batch in enumerate(self.loader):
      if i >= self.n:
        break
      self.samples += len(batch)
      self.batches += 1
      yield batch


def build(args: dict):
  cfg = {
      "data_path": args["data_path"], "checkpoint_dir": args.get("checkpoint_dir", "/tmp/recbole_saved"),
      "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "RATING_FIELD": "rating",
      "TIME_FIELD": "timestamp",
      "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
      "MAX_ITEM_LIST_LENGTH": args["max_len"], "loss_type": "CE", "train_neg_sample_args": None,
      "hidden_size": args["dim"], "inner_size": args["mlp_dim"], "n_layers": args["blocks"],
      "n_heads": args["heads"], "hidden_dropout_prob": args["dropout"],
      "attn_dropout_prob": args["dropout"], "hidden_act": "gelu",
      "train_batch_size": args["batch_size"], "eval_batch_size": args.get("eval_batch_size", 256),
      "learning_rate": args["lr"], "epochs": args.get("epochs", 200),
      "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                    "group_by": "user"},
      "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
      "use_gpu": torch.cuda.is_available(), "show_progress": False, "seed": args.get("seed", 2020),
      "reproducibility": True, "state": "WARNING", "worker": 0,
  }
  config = Config(model="SASRec", dataset=args["dataset"], config_dict=cfg)
  init_seed(config["seed"], config["reproducibility"])
  dataset = create_dataset(config)
  train_data, valid_data, test_data = data_preparation(config, dataset)
  model = SASRec(config, train_data.dataset).to(config["device"])
  return config, dataset, train_data, valid_data, test_data, model, Trainer(config, model)


def throughput(args: dict) -> dict:
  t0 = time.perf_counter()
  config, dataset, train_data, _, _, _, trainer = build(args)
  setup_s = time.perf_counter() - t0
  trainer._train_epoch(Bounded(train_data, args["warmup"]), 0)  # pylint: disable=protected-access
  timed = Bounded(train_data, args["batches"])
  t = time.perf_counter()
  trainer._train_epoch(timed, 1)  # pylint: disable=protected-access
  elapsed = time.perf_counter() - t
  return {"mode": "throughput", "setup_s": setup_s, "batches": timed.batches,
          "samples": timed.samples, "seconds": elapsed, "targets_per_s": timed.samples / elapsed,
          "batches_per_s": timed.batches / elapsed, "batches_per_epoch": len(train_data),
          "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
          # RecBole's augmented (prefix -> next item) samples: every interaction but each
          # user's first (its validation and test targets included)
          "sequence_samples": int(dataset.inter_num), "device": str(config["device"]),
          "torch": torch.__version__, "threads": torch.get_num_threads(),
          "anomaly_detection": torch.is_anomaly_enabled()}


def time_to_quality(args: dict) -> dict:
  t0 = time.perf_counter()
  config, _, train_data, valid_data, _, _, trainer = build(args)
  history = []
  reached = None
  for epoch in range(args.get("epochs", 200)):
    limit = args.get("batches_per_epoch", 0)  # > 0: a bounded epoch (dry runs)
    trainer._train_epoch(Bounded(train_data, limit) if limit else train_data, epoch)  # pylint: disable=protected-access
    score, result = trainer._valid_epoch(valid_data)  # pylint: disable=protected-access
    now = time.perf_counter() - t0
    history.append({"epoch": epoch + 1, "seconds": now, "valid_ndcg@10": float(score),
                    "valid_hit@10": float(result.get("hit@10", float("nan")))})
    print(f"recbole epoch {epoch + 1}: valid ndcg@10 {score:.4f} at {now:.1f}s", flush=True)
    if score >= args["target"]:
      reached = now
      break
    if now > args["max_seconds"]:
      break
  return {"mode": "ttq", "target": args["target"], "seconds_to_target": reached,
          "history": history, "device": str(config["device"]), "torch": torch.__version__}


def main() -> None:
  args = json.loads(sys.argv[1])
  out = throughput(args) if args["mode"] == "throughput" else time_to_quality(args)
  print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
  main()
