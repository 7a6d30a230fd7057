"""Wall time to reach a validation NDCG@10, ours (the engine) and the peer (RecBole).

Ours: one `train_and_evaluate` run (the engine) of `--config` (default
configs/sasrec_ml1m.py) on the device path (`train.input=device`), validating after
every epoch, unless the command line sets those keys (`--config.a.b=v`). The clock
starts before the engine reads the dataset and includes every compilation,
validation and checkpoint. A watcher thread reads the run's metrics.jsonl as the
engine writes it: at the first validation at or above `--target` (default 0.138:
RecBole's test NDCG@10 on one H200 after 2 epochs / 75 s, used here as the validation
target), or after `--max_seconds`, it sends the process SIGTERM, which the engine
answers by checkpointing and returning (its preemption path); otherwise the run ends
after its `train.num_epochs`.

Peer: RecBole 1.2.1's SASRec through recbole_worker.py in its own venv (see
compare_recbole.py) on the same data and model sizes, its clock also starting before
its dataset is built; only with `--peer=recbole` and when that venv exists.

  python benchmarks/time_to_quality.py                       # ours
  python benchmarks/time_to_quality.py --peer=recbole --peer_max_seconds=1800
  python benchmarks/time_to_quality.py --config.train.batch_size=256 --config.optim.lr=2e-3
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
from absl import flags  # noqa: E402

from seqrec_jax import cli  # noqa: E402
from seqrec_jax.train.loop import train_and_evaluate  # noqa: E402

_CONFIG = common.define_config(str(common.CONFIGS / "sasrec_ml1m.py"))
_TARGET = flags.DEFINE_float("target", 0.138, "validation value of eval.select_metric to reach")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 600.0, "ours: give up after this")
_WORKDIR_ROOT = flags.DEFINE_string("workdir_root", tempfile.gettempdir(),
                                    "a fresh run directory is made in here")
_PEER = flags.DEFINE_enum("peer", "none", ["none", "recbole"], "also time the peer")
_RECBOLE_PYTHON = flags.DEFINE_string("recbole_python", "/tmp/recbole-venv/bin/python", "")
_PEER_MAX_SECONDS = flags.DEFINE_float("peer_max_seconds", 1800.0, "")
_PEER_BATCHES = flags.DEFINE_integer("peer_batches_per_epoch", 0, "> 0: bounded (dry runs)")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_TAG = flags.DEFINE_string("tag", "", "file name suffix (default: backend)")


class Watcher(threading.Thread):
  """Follows `<workdir>/metrics.jsonl`; stops the engine (SIGTERM) at the target or the
  deadline. Only signals once a train or valid record shows the epochs have begun (the
  engine's SIGTERM handler is installed for them)."""

  def __init__(self, workdir: str, t0: float, key: str, target: float, max_seconds: float):
    super().__init__(daemon=True)
    self.path, self.t0, self.key = os.path.join(workdir, "metrics.jsonl"), t0, key
    self.target, self.max_seconds = target, max_seconds
    self.done = threading.Event()
    self.history: list[dict] = []
    self.reached: float | None = None
    self.stopped = ""
    self._last_time = 0.0  # the engine's "time" of the last train record

  def _halt(self, why: str) -> None:
    self.stopped = why
    os.kill(os.getpid(), signal.SIGTERM)

  def run(self) -> None:
    offset, started = 0, False
    while not self.done.is_set():
      if os.path.exists(self.path):
        with open(self.path, "rb") as f:
          f.seek(offset)
          chunk = f.read()
        lines = chunk.split(b"\n")[:-1]  # whole lines only
        offset += sum(len(line) + 1 for line in lines)
        now = time.perf_counter() - self.t0
        for line in lines:
          r = json.loads(line)
          started = True
          if r["kind"] == "train":
            self._last_time = r["time"]
          elif r["kind"] == "valid":
            self.history.append({"epoch": r["epoch"], "step": r["step"], "seconds": now,
                                 "engine_train_time": self._last_time,
                                 f"valid_{self.key}": r[self.key], "valid_hr@10": r["hr@10"]})
            print(f"ours epoch {r['epoch']}: valid {self.key} {r[self.key]:.4f} at {now:.1f}s",
                  flush=True)
            if self.reached is None and r[self.key] >= self.target:
              self.reached = now
              return self._halt("target reached")
        if started and now > self.max_seconds:
          return self._halt(f"--max_seconds={self.max_seconds:g}")
      self.done.wait(0.05)


def ours(cfg) -> dict:
  workdir = tempfile.mkdtemp(prefix="time_to_quality_", dir=_WORKDIR_ROOT.value)
  key = ("excl/" if cfg.eval.exclude_seen else "") + cfg.eval.select_metric
  # A SIGTERM the watcher sends just after the epochs ended (the engine has restored the
  # previous handler by then) must not kill the process.
  previous = signal.signal(signal.SIGTERM, lambda *_: None)
  t0 = time.perf_counter()
  watcher = Watcher(workdir, t0, key, _TARGET.value, _MAX_SECONDS.value)
  watcher.start()
  try:
    report = train_and_evaluate(cfg, workdir)
  finally:
    watcher.done.set()
    watcher.join()
    signal.signal(signal.SIGTERM, previous)
  wall = time.perf_counter() - t0
  return {"seconds_to_target": watcher.reached, "metric": key, "wall_seconds": wall,
          "stopped": watcher.stopped or "train.num_epochs done", "workdir": workdir,
          "history": watcher.history, "interrupted_at_step": report.get("interrupted_at_step"),
          "dtype": cfg.model.dtype, "input": cfg.train.input, "batch_size": cfg.train.batch_size,
          "overrides": common.overrides(_CONFIG)}


def peer(cfg) -> dict:
  if not os.path.exists(_RECBOLE_PYTHON.value):
    return {"error": f"{_RECBOLE_PYTHON.value} not found (RecBole not installed here)"}
  split = common.load_split(cfg)
  folder = common.write_recbole_atomic(split.data, tempfile.mkdtemp(prefix="recbole_data_"))
  m = cfg.model
  return common.run_recbole(_RECBOLE_PYTHON.value, {
      "mode": "ttq", "data_path": folder, "dataset": "ml1m", "max_len": m.max_len,
      "dim": m.embed_dim, "mlp_dim": m.mlp_dim, "blocks": m.num_blocks, "heads": m.num_heads,
      "dropout": m.dropout, "batch_size": 128, "lr": 1e-3,  # RecBole's own SASRec recipe
      "target": _TARGET.value, "max_seconds": _PEER_MAX_SECONDS.value,
      "epochs": cfg.train.num_epochs, "batches_per_epoch": _PEER_BATCHES.value},
      timeout=_PEER_MAX_SECONDS.value + 900)


def main(argv) -> None:
  del argv
  gpu = jax.default_backend() == "gpu"
  cfg = common.config_from_flags(_CONFIG, {**common.DEVICE_PATH, "train.eval_every_epochs": 1,
                                           "model.dtype": "bfloat16" if gpu else "float32"})
  result = {**common.results_meta(config=common.config_name(_CONFIG)),
            "target": _TARGET.value, "ours": ours(cfg)}
  if _PEER.value == "recbole":
    result["recbole"] = peer(cfg)
  o = result["ours"]
  lines = [f"# Time to validation {o['metric']} >= {_TARGET.value}, "
           f"{common.config_name(_CONFIG)}", "", common.describe(result), "",
           f"| trainer | seconds to target (incl. data + compile) | epochs | best valid {o['metric']} |",
           "|---|---|---|---|"]
  best = max((h[f"valid_{o['metric']}"] for h in o["history"]), default=float("nan"))
  reached = f"{o['seconds_to_target']:.1f}" if o["seconds_to_target"] is not None else "not reached"
  lines.append(f"| ours (engine, {o['input']} input, {o['dtype']}) | {reached} "
               f"| {o['history'][-1]['epoch'] if o['history'] else 0} | {best:.4f} |")
  if "recbole" in result:
    r = result["recbole"]
    if "error" in r:
      lines.append(f"| RecBole 1.2.1 | did not run: {r['error'][:200]} | | |")
    else:
      rb = max((h["valid_ndcg@10"] for h in r["history"]), default=float("nan"))
      lines.append(f"| RecBole 1.2.1 ({r['device']}) | {r['seconds_to_target'] or 'not reached'} "
                   f"| {r['history'][-1]['epoch'] if r['history'] else 0} | {rb:.4f} |")
      if r.get("seconds_to_target") and o["seconds_to_target"]:
        lines += ["", f"Speed-up to target: {r['seconds_to_target'] / o['seconds_to_target']:.1f}x"]
  stem = os.path.join(_OUT.value, f"time_to_quality_{_TAG.value or jax.default_backend()}")
  common.write_results(stem, result, "\n".join(lines) + "\n")
  print("\n".join(lines[4:]))
  print(f"wrote {stem}.json/.md")


if __name__ == "__main__":
  cli.run(main)
