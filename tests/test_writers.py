"""MetricWriter: metrics.jsonl lines are the records; TensorBoard events read back with
TensorBoard's own reader (event_accumulator.EventAccumulator) have the tags, steps, values."""

import json
import math

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from seqrec_jax.writers import MetricWriter

RECORDS = [
    {"kind": "train", "step": 10, "loss": 2.5, "grad_norm": np.float32(0.75),
     "steps_per_s": 12.0, "targets_per_s": 3072.0, "step_time_s": 0.0833, "time": 1.5},
    {"kind": "train", "step": 20, "loss": 2.25, "grad_norm": 0.5, "steps_per_s": 14.0,
     "targets_per_s": 3584.0, "step_time_s": 0.0714, "time": 2.25},
    {"kind": "valid", "step": 20, "epoch": 1, "ndcg@10": 0.125, "excl/ndcg@10": 0.1875,
     "hr@10": 0.25, "users": np.int64(6040), "note": "text is not a scalar", "ok": True},
    {"kind": "train", "phase": "adversarial", "step": 5, "d_loss": float("nan"),
     "g_loss": float("inf")},
    {"kind": "test", "step": 20, "ndcg@10": 0.0625, "ks": [1, 10]},
]


def scalars(logdir) -> dict:
  acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0})
  acc.Reload()
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_jsonl_lines_are_the_records_and_tensorboard_has_the_scalars(tmp_path):
  with MetricWriter(str(tmp_path)) as writer:
    for r in RECORDS:
      writer.write(r)
    # metrics.jsonl is flushed on every write, before close
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == len(RECORDS)

  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  for line, record in zip(lines, RECORDS, strict=True):
    assert line.keys() == record.keys()
    for k, v in record.items():
      if isinstance(v, float) and math.isnan(v):
        assert math.isnan(line[k])
      else:
        assert line[k] == v, k

  got = scalars(tmp_path / "tensorboard")
  assert set(got) == {
      "train/loss", "train/grad_norm", "train/steps_per_s", "train/targets_per_s",
      "train/step_time_s", "train/time",
      "valid/epoch", "valid/ndcg@10", "valid/excl/ndcg@10", "valid/hr@10", "valid/users",
      "adversarial/train/d_loss", "adversarial/train/g_loss",
      "test/ndcg@10"}  # not step, the string, the bool or the list
  assert got["train/loss"] == [(10, 2.5), (20, 2.25)]
  assert got["train/grad_norm"] == [(10, 0.75), (20, 0.5)]
  assert got["train/steps_per_s"] == [(10, 12.0), (20, 14.0)]
  assert [s for s, _ in got["train/step_time_s"]] == [10, 20]
  assert [v for _, v in got["train/step_time_s"]] == pytest.approx([0.0833, 0.0714], rel=1e-6)
  assert got["valid/excl/ndcg@10"] == [(20, 0.1875)]
  assert got["valid/users"] == [(20, 6040.0)]
  assert got["test/ndcg@10"] == [(20, 0.0625)]
  (step, d_loss), = got["adversarial/train/d_loss"]
  assert step == 5 and math.isnan(d_loss)
  assert got["adversarial/train/g_loss"] == [(5, math.inf)]


def test_appends_across_writers_and_purge_step_drops_redone_steps(tmp_path):
  with MetricWriter(str(tmp_path)) as w:
    for step in (1, 2, 3):
      w.write({"kind": "train", "step": step, "loss": float(step)})
  with MetricWriter(str(tmp_path), purge_step=2) as w:  # resumed from the step-1 checkpoint
    for step in (2, 3):
      w.write({"kind": "train", "step": step, "loss": 10.0 + step})
  steps = [json.loads(l)["step"] for l in open(tmp_path / "metrics.jsonl")]
  assert steps == [1, 2, 3, 2, 3]  # append-only
  assert scalars(tmp_path / "tensorboard")["train/loss"] == [(1, 1.0), (2, 12.0), (3, 13.0)]


def test_disabled_writer_writes_nothing(tmp_path):
  with MetricWriter(str(tmp_path / "run"), enabled=False) as w:
    w.write({"kind": "train", "step": 1, "loss": 1.0})
    w.flush()
  assert not (tmp_path / "run").exists()


def test_record_without_kind_or_step_is_rejected(tmp_path):
  with MetricWriter(str(tmp_path)) as w:
    with pytest.raises(ValueError, match="'step'"):
      w.write({"kind": "train", "loss": 1.0})
    with pytest.raises(ValueError, match="'kind'"):
      w.write({"step": 1, "loss": 1.0})
  assert (tmp_path / "metrics.jsonl").read_text() == ""
