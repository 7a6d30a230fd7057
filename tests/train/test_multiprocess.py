"""Two local processes joined with jax.distributed on 127.0.0.1 train like one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train(workdir, *extra, devices=4):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  cmd = [sys.executable, "-m", "seqrec_jax.train", "--config=configs/default.py:smoke",
         f"--workdir={workdir}", "--config.train.batch_size=32",
         # no dropout: masks are drawn per global row, and rows arrive in another order
         "--config.model.dropout=0", "--config.model.emb_dropout=0", *extra]
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


# Sampled softmax with negatives shared by the batch: the same draws on every process
# (the step's rng is replicated), whatever the order of rows within a batch.
LOSSES = {"ce": (), "sampled_softmax": ("--config.loss.name=sampled_softmax",
                                        "--config.loss.share_negatives=batch",
                                        "--config.loss.num_negatives=16")}


@pytest.mark.slow
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_two_processes_match_one_process(tmp_path, loss):
  single = _train(tmp_path / "single", *LOSSES[loss], devices=8)
  out, _ = single.communicate(timeout=600)
  assert single.returncode == 0, out[-3000:]
  port = _free_port()
  procs = [_train(tmp_path / "multi", f"--config.mesh.coordinator=127.0.0.1:{port}",
                  "--config.mesh.num_processes=2", f"--config.mesh.process_id={i}",
                  *LOSSES[loss])
           for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, o in zip(procs, outs):
    assert p.returncode == 0, o[-3000:]
  a = json.load(open(tmp_path / "single" / "final.json"))
  b = json.load(open(tmp_path / "multi" / "final.json"))
  assert a["best_step"] == b["best_step"]
  # Same batches (rows in another order within each batch): equal up to float rounding.
  losses = lambda d: [r["loss"] for r in map(json.loads, open(d / "metrics.jsonl"))
                      if r["kind"] == "train"]
  assert losses(tmp_path / "multi") == pytest.approx(losses(tmp_path / "single"), rel=1e-4)
  for key in ("ndcg@10", "hr@10", "excl/ndcg@10"):
    assert b["test"][key] == pytest.approx(a["test"][key], abs=0.01), key
