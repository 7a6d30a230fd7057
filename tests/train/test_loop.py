"""End-to-end: smoke train on synthetic data, exact resume, corrupt checkpoints."""

import json
import os
import shutil

import numpy as np
import pytest

from configs import default
from seqrec_jax import checkpoint
from seqrec_jax.train import loop


def smoke_config(**overrides):
  cfg = default.get_config("smoke")
  for key, value in overrides.items():
    section, field = key.split(".")
    cfg[section][field] = value
  return cfg


def test_smoke_train_writes_metrics_and_reports_test_once(tmp_path):
  report = loop.train_and_evaluate(smoke_config(), str(tmp_path))
  assert report["test"]["users"] > 0
  for name in ("hr@10", "ndcg@10", "mrr@10", "excl/ndcg@10"):
    assert np.isfinite(report["test"][name])
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  kinds = [r["kind"] for r in records]
  assert kinds.count("test") == 1 and kinds[-1] == "test"
  assert kinds.count("valid") == 2  # eval_every_epochs=1, 2 epochs
  # epoch-end train records carry their epoch (benchmarks time epochs from them)
  assert [r["epoch"] for r in records if r["kind"] == "train" and "epoch" in r] == [1, 2]
  assert json.load(open(tmp_path / "final.json"))["best_step"] == report["best_step"]
  assert (tmp_path / "config.json").exists()


def test_training_budget_ends_at_an_epoch_end_and_still_tests_the_best(tmp_path):
  cfg = smoke_config(**{"train.num_epochs": 4, "train.eval_every_epochs": 3,
                        "train.max_train_secs": 1e-6})
  report = loop.train_and_evaluate(cfg, str(tmp_path))
  assert report["budget_stop_epoch"] == 1  # the first epoch end is past the budget
  assert report["best_epoch"] == 1 and report["test"]["users"] > 0  # validated although 1 % 3
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  steps_per_epoch = report["best_step"]
  assert max(r["step"] for r in records if r["kind"] == "train") == steps_per_epoch
  again = loop.train_and_evaluate(cfg, str(tmp_path))  # a rerun does not train past it
  assert again["resumed_from"] == steps_per_epoch and again["best_step"] == steps_per_epoch


@pytest.mark.reliability  # ~80 s on 2 cores: with the kill / resume suite
def test_interrupted_run_resumes_to_identical_result(tmp_path):
  straight = loop.train_and_evaluate(smoke_config(), str(tmp_path / "a"))
  first = loop.train_and_evaluate(smoke_config(**{"train.max_steps_this_run": 3}),
                                  str(tmp_path / "b"))
  assert first["interrupted_at_step"] == 3  # mid-epoch: data iterator state matters
  assert first["resumed_from"] == 0 and first["reason"] == "train.max_steps_this_run"
  resumed = loop.train_and_evaluate(smoke_config(), str(tmp_path / "b"))
  assert straight["resumed_from"] == 0
  assert resumed["resumed_from"] == 3  # it restored step 3, it did not retrain from 0
  assert resumed["best_step"] == straight["best_step"]
  records = [json.loads(l) for l in open(tmp_path / "b" / "metrics.jsonl")]
  train_steps = [r["step"] for r in records if r["kind"] == "train"]
  assert train_steps == sorted(set(train_steps)) and train_steps[0] <= 3 < train_steps[-1]
  for key, value in straight["test"].items():
    assert resumed["test"][key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.reliability  # with the damaged-checkpoint suite
def test_corrupt_latest_checkpoint_falls_back_to_older_one(tmp_path, capsys):
  loop.train_and_evaluate(smoke_config(**{"train.max_to_keep": 3}), str(tmp_path))
  ckpt_dir = tmp_path / "checkpoints"
  steps = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  assert len(steps) >= 2
  latest = ckpt_dir / str(steps[-1]) / "state"
  for root, _, files in os.walk(latest):  # truncate every array file of the latest step
    for f in files:
      open(os.path.join(root, f), "wb").close()
  cfg = smoke_config()
  from seqrec_jax import models, parallel
  from seqrec_jax.train import optim
  from seqrec_jax.train.state import abstract_state, create_train_state
  mesh = parallel.make_mesh((-1, 1), ("data", "model"))
  model = models.build_model(cfg.model, 60)
  tx = optim.build_optimizer(cfg.optim, 10)
  init = lambda r: model.init({"params": r}, np.zeros((1, cfg.model.max_len), np.int32))["params"]
  state, state_sh = create_train_state(init, tx, 0, mesh)
  ckpts = checkpoint.Checkpoints(str(tmp_path), 3)
  restored, meta = ckpts.restore_latest(abstract_state(state_sh, state), None)
  assert int(restored.step) == steps[-2]
  shutil.rmtree(ckpt_dir / str(steps[-2]) / "state")  # now every remaining one is broken
  for s in steps[:-2]:
    shutil.rmtree(ckpt_dir / str(s) / "state")
  with pytest.raises(checkpoint.CheckpointError, match=str(ckpt_dir)):
    ckpts.restore_latest(abstract_state(state_sh, state), None)
  ckpts.close()
  assert os.path.exists(ckpt_dir / f"{steps[-1]}.damaged")  # set aside, not deleted


@pytest.mark.reliability  # with the failure-injection suite
def test_nan_guard_stops_with_clear_message(tmp_path):
  cfg = smoke_config(**{"optim.lr": 1e30})  # (a NaN lr is rejected by the config check)
  with pytest.raises(loop.NonFiniteLossError, match="at step"):
    loop.train_and_evaluate(cfg, str(tmp_path))


@pytest.mark.slow  # ~35 s on 2 cores
def test_ema_run_keeps_the_average_as_its_best_params(tmp_path):
  cfg = smoke_config(**{"optim.ema_decay": 0.9})
  report = loop.train_and_evaluate(cfg, str(tmp_path))
  valid = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  valid = [r for r in valid if r["kind"] == "valid"]
  assert valid and all("raw/ndcg@10" in r for r in valid)
  assert any(r["raw/ndcg@10"] != r["ndcg@10"] for r in valid)  # two different models
  assert np.isfinite(report["test"]["ndcg@10"])
