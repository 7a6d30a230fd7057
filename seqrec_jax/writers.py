"""Metric writers: one `write(record)` call goes to `metrics.jsonl` and to TensorBoard.

`MetricWriter(workdir)` appends each record, exactly as given, as one JSON object per
line to `<workdir>/metrics.jsonl` (flushed after every line, so a killed run loses
nothing that was written), and logs each numeric field of it as a TensorBoard scalar
under `<workdir>/tensorboard/` (view with `tensorboard --logdir=<workdir>/tensorboard`).

A record is a flat dict with a "kind" ("train", "valid", "test", ...) and an integer
"step", optionally a "phase" (e.g. "adversarial"). Every numeric field other than
"step" (Python or NumPy int/float, or a 0-d array, finite or not; not bools) becomes
the scalar `<kind>/<key>` at that step, or `<phase>/<kind>/<key>` when the record has
a phase. Strings, lists and nested dicts go to the JSONL file only. So the training
engine's throughput and timing fields ("steps_per_s", "targets_per_s", "step_time_s",
"time") show up as `train/steps_per_s`, `train/targets_per_s`, `train/step_time_s`, ...
next to `train/loss`, and validation metrics as `valid/ndcg@10`, `valid/excl/ndcg@10`.
TensorBoard stores scalars as float32; metrics.jsonl keeps the exact values
(non-finite ones as `NaN` / `Infinity`, which Python's `json` reads back).

The TensorBoard side uses tensorboardX, a small maintained event-file writer (its
dependencies are numpy, packaging and protobuf). The usual choice for JAX projects,
`clu.metric_writers`, was not used because its TensorBoard writer imports TensorFlow
(`clu/metric_writers/tf/summary_writer.py` does `import tensorflow as tf`; its only
other TensorBoard backend needs PyTorch), a multi-hundred-megabyte dependency this
project otherwise has no use for (clu does not even declare it: it would be a missing
import at run time).

On the non-zero processes of a multi-process run, make the writer with
`enabled=False`: it then creates and writes nothing (records are still checked).
"""

from __future__ import annotations

import json
import numbers
import os
import time
from typing import Any

import numpy as np
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _is_number(value: Any) -> bool:
  """Numeric scalars that become TensorBoard scalars (bools are not)."""
  if isinstance(value, (bool, np.bool_)):
    return False
  if isinstance(value, numbers.Real):  # int, float, NumPy integer/floating scalars
    return True
  dtype = getattr(value, "dtype", None)  # 0-d NumPy / JAX arrays
  return (getattr(value, "shape", None) == () and dtype is not None
          and np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating))


def _json_default(value: Any) -> Any:
  """NumPy (and JAX) scalars and arrays as their Python values."""
  if isinstance(value, np.generic) or getattr(value, "shape", None) == ():
    return value.item()
  if hasattr(value, "tolist"):
    return value.tolist()
  raise TypeError(f"metric value {value!r} of type {type(value).__name__} is not JSON "
                  "serializable")


def scalar_tag(record: dict, key: str) -> str:
  """The TensorBoard tag of `record[key]`: `kind/key`, or `phase/kind/key`."""
  tag = f"{record['kind']}/{key}"
  return f"{record['phase']}/{tag}" if record.get("phase") else tag


class MetricWriter:
  """Writes metric records to `<workdir>/metrics.jsonl` and `<workdir>/tensorboard/`.

  Args:
    workdir: the run directory (created if missing).
    enabled: False on processes that must not write (non-zero `jax.process_index()`).
    purge_step: on a resumed run, the step it resumes from: TensorBoard then drops the
      earlier event files' points at or after this step (those steps are trained again),
      so curves have no doubled segments. metrics.jsonl is append-only and keeps both.
  """

  def __init__(self, workdir: str, enabled: bool = True, purge_step: int | None = None):
    self.workdir = workdir
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    self.tensorboard_dir = os.path.join(workdir, TENSORBOARD_DIR)
    self._file = None
    self._tb = None
    if enabled:
      os.makedirs(self.tensorboard_dir, exist_ok=True)
      self._file = open(self.path, "a")
      # tensorboardX names event files by the second and the host, and opens them with
      # "wb": a suffix unique within the second keeps a writer reopened at once (a quick
      # resume) from overwriting the last one's file, and sorts in creation order.
      suffix = f".{time.time_ns() % 10**9:09d}.{os.getpid()}"
      self._tb = SummaryWriter(logdir=self.tensorboard_dir, purge_step=purge_step,
                               flush_secs=30, filename_suffix=suffix)

  def write(self, record: dict) -> None:
    """Appends `record` to metrics.jsonl and logs its numeric fields to TensorBoard."""
    missing = [k for k in ("kind", "step") if k not in record]
    if missing:
      raise ValueError(f"metric record needs {' and '.join(map(repr, missing))}: {record!r}")
    if not self.enabled:
      return
    if self._file is None:
      raise ValueError(f"MetricWriter for {self.workdir} is closed")
    self._file.write(json.dumps(record, default=_json_default) + "\n")
    self._file.flush()
    values = [Summary.Value(tag=scalar_tag(record, key), simple_value=float(value))
              for key, value in record.items() if key != "step" and _is_number(value)]
    if values:
      # One event per record, tags as given: `SummaryWriter.add_scalar` would rewrite
      # each tag to TF1 node-name characters ("valid/ndcg@10" -> "valid/ndcg_10").
      self._tb.file_writer.add_summary(Summary(value=values), global_step=int(record["step"]))

  def flush(self) -> None:
    """Forces pending TensorBoard events to disk (metrics.jsonl is flushed every write)."""
    if self._file is not None:
      self._file.flush()
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes both outputs; a second call does nothing."""
    if self._file is not None:
      self._file.close()
      self._tb.close()
      self._file = self._tb = None

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
