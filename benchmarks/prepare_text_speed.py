"""Items/s of `prepare_text` (item text -> all-MiniLM-L6-v2 embeddings) on this machine.

  python benchmarks/prepare_text_speed.py --config=configs/sasrec_toys.py \
      --out=benchmarks/results/prepare_text_toys.json [--config.text.batch_size=256]

Runs `seqrec_jax.text.prepare` with force into a fresh cache folder (the dataset cache is
read from the config's own), so tokenising, every compilation and the write are timed,
as a user running `python -m seqrec_jax.prepare_text` sees them. Then it encodes a
sample of the same texts again with the compiled encoder for the steady-state rate.
Records the git revision, the machine and its load average (the CPUs may be shared).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "..", "configs", "sasrec_toys.py"),
    "Config file (its data and text sections are used).", lock_config=True)
_OUT = flags.DEFINE_string("out", "", "Write the result JSON here.")
_SAMPLE = flags.DEFINE_integer("sample", 2048, "Texts re-encoded for the steady-state rate.")
_ITEMS = flags.DEFINE_integer(
    "items", 0, "> 0: time only this many items drawn at random (seed 0) instead of the whole "
    "prepare (for a machine too busy for the full run); the full time is then projected.")


def machine() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()][:2],
          "device_count": jax.device_count(), "cpu_count": os.cpu_count(),
          "cpu": _cpu_model(), "jax": jax.__version__, "python": platform.python_version(),
          "platform": platform.platform()}


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def main(argv):
  del argv
  # pylint: disable=import-outside-toplevel
  from seqrec_jax import cli, text
  from seqrec_jax.data import item_text
  from seqrec_jax.data.load import load_dataset
  from seqrec_jax.train.engine import git_revision
  cli.setup_logging()
  cfg = _CONFIG.value
  ds = load_dataset(cfg.data)
  if _ITEMS.value > 0:
    return _sampled(cfg, ds, _ITEMS.value)
  out_dir = tempfile.mkdtemp(prefix="prepare_text_speed-")
  try:
    cfg.unlock()
    cfg.data.cache_dir = out_dir
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    info = text.prepare(cfg, ds, force=True)
    total = time.perf_counter() - t0
    load_after = os.getloadavg()
    texts = item_text.item_texts(cfg.data, ds, cfg.text.template, cfg.text.path)[1:]
    encoder = text.load_encoder(cfg.text)  # compilations are shared with prepare's encoder
    sample = texts[:_SAMPLE.value]
    t1 = time.perf_counter()
    encoder.encode(sample, batch_size=int(cfg.text.batch_size))
    steady = time.perf_counter() - t1
  finally:
    shutil.rmtree(out_dir, ignore_errors=True)
  result = {
      "what": "python -m seqrec_jax.prepare_text on the config's dataset (forced rewrite)",
      "git": git_revision(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
      "machine": machine(), "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
      "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
      "dataset": cfg.data.path, "num_items": info["num_items"], "model": info["model"],
      "template": info["key"]["template"], "max_tokens": int(cfg.text.max_tokens),
      "batch_size": int(cfg.text.batch_size), "tokens_mean": info["tokens_mean"],
      "tokens_max": info["tokens_max"], "truncated": info["truncated"],
      "load_model_s": info["load_seconds"], "encode_s": info["seconds"],
      "items_per_s": info["items_per_s"], "prepare_total_s": round(total, 2),
      "items_per_s_total": round(info["num_items"] / total, 1),
      "steady_sample": len(sample), "steady_s": round(steady, 2),
      "steady_items_per_s": round(len(sample) / steady, 1),
  }
  _write(result)


def _sampled(cfg, ds, n: int) -> None:
  """Encodes `n` random items' texts in a fresh encoder (tokenising, compiling, encoding
  timed), then again compiled; projects the whole catalogue from the compiled rate."""
  # pylint: disable=import-outside-toplevel
  import numpy as np
  from seqrec_jax import text
  from seqrec_jax.data import item_text
  from seqrec_jax.train.engine import git_revision
  texts = item_text.item_texts(cfg.data, ds, cfg.text.template, cfg.text.path)[1:]
  pick = np.random.default_rng(0).choice(len(texts), size=min(n, len(texts)), replace=False)
  sample = [texts[i] for i in sorted(pick)]
  batch = int(cfg.text.batch_size)
  load_before = os.getloadavg()
  t0 = time.perf_counter()
  encoder = text.load_encoder(cfg.text)
  load_s = time.perf_counter() - t0
  t1 = time.perf_counter()
  encoder.encode(sample, batch_size=batch, progress=text.Progress())
  first = time.perf_counter() - t1
  t2 = time.perf_counter()
  encoder.encode(sample, batch_size=batch)
  steady = time.perf_counter() - t2
  load_after = os.getloadavg()
  lengths = encoder.last_lengths
  compile_s = max(first - steady, 0.0)
  result = {
      "what": (f"{len(sample)} random items of the catalogue encoded as prepare_text does "
               "(the full run did not fit this machine's load); full time projected"),
      "git": git_revision(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
      "machine": machine(), "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
      "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
      "dataset": cfg.data.path, "num_items": len(texts), "sample_items": len(sample),
      "model": cfg.text.model, "max_tokens": int(cfg.text.max_tokens), "batch_size": batch,
      "tokens_mean": round(float(lengths.mean()), 2), "tokens_max": int(lengths.max()),
      "load_model_s": round(load_s, 2), "first_pass_s": round(first, 2),
      "first_pass_items_per_s": round(len(sample) / first, 1),
      "steady_s": round(steady, 2), "steady_items_per_s": round(len(sample) / steady, 1),
      "compile_s_estimate": round(compile_s, 2),
      "projected_full_prepare_s": round(load_s + compile_s + len(texts) * steady / len(sample), 1),
  }
  result["projected_items_per_s"] = round(len(texts) / (result["projected_full_prepare_s"]
                                                          - load_s), 1)
  _write(result)


def _write(result: dict) -> None:
  text_out = json.dumps(result, indent=2)
  print(text_out)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value, "w", encoding="utf-8") as f:
      f.write(text_out + "\n")


if __name__ == "__main__":
  app.run(main)
