"""Shared by the benchmark scripts: configs from the command line (the same flags as
`python -m seqrec_jax.train`), results files that record the code revision and the
machine, and the device-path trainer the throughput scripts time (FLOPs, memory, peak
FLOP/s).

Not a library module: the scripts in benchmarks/ import it as `common` (they put the
repository root and this folder on sys.path).

Configs from the command line -- one mechanism, ml_collections' own:
  * `define_config(default)`: `--config=path[:variant]` plus `--config.a.b=v`
    (`config_flags.DEFINE_config_file`, locked), exactly as `python -m seqrec_jax.train`;
    `config_from_flags(holder, defaults)` reads it, `defaults` filling only the keys the
    command line did not set.
  * `define_overrides(name)`: `--<name>.a.b=v` only, for scripts that build several
    presets (quality_table, multistep, gan_compare): `config_flags.DEFINE_config_dict`
    over `base_config()` (locked), so every value is parsed with its field's type and an
    unknown key fails by name, as with --config. `overrides(holder)` is the parsed flat
    dict (`config_flags.get_override_values`), `with_overrides(cfg, flat)` applies it to
    a preset (`ConfigDict.update_from_flattened_dict`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
CONFIGS = REPO / "configs"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax import config as config_lib  # noqa: E402
from seqrec_jax import config_schema, models, presets  # noqa: E402
from seqrec_jax.config_cli import (  # noqa: E402,F401  (the scripts use them as common.*)
    config_from_flags, config_name, define_config, define_overrides, overrides, with_overrides)
from seqrec_jax.data import device_data  # noqa: E402
from seqrec_jax.data.dataset import LeaveOneOut, SequenceDataset, leave_one_out  # noqa: E402
from seqrec_jax.models.layers import resolve_attention_impl  # noqa: E402
from seqrec_jax.train import engine, steps  # noqa: E402
from seqrec_jax.train.setup import build_setup  # noqa: E402  (also used by the scripts)
from seqrec_jax.train.state import TrainState  # noqa: E402

# Dense peak FLOP/s (bf16/fp16 tensor cores, no sparsity) by a substring of
# `device.device_kind`, first match wins. MFU of float32 rows uses the same peak.
PEAK_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0),
    ("V100", 125.0), ("TPU v6", 918.0), ("TPU v5p", 459.0), ("TPU v5", 197.0),
    ("TPU v4", 275.0),
)

# The device-resident input path (what the throughput rows and time to quality train on).
DEVICE_PATH = {"train.input": "device",
               "train.length_grouping": 0}  # a Grain-path option: the device path has one shape


# ---- Configs from the command line ------------------------------------------------------------


def preset_config(model: str, dataset: str, variant: str = "") -> ml_collections.ConfigDict:
  """The standard config of `model` on `dataset`: configs/<model>_<dataset>.py (its
  `get_config(variant)`), or on "synthetic" configs/default.py (the built-in synthetic
  data) with `model.name` swapped and the model's own task (`task.name="auto"`)."""
  if dataset == "synthetic":
    cfg = presets.default(variant)
    cfg.model.name, cfg.task.name = model, "auto"
    return cfg
  return importlib.import_module(f"configs.{model}_{dataset}").get_config(variant)


# ---- Results files: the code revision and the machine ---------------------------------------

UNKNOWN_GIT = "unknown (made before revisions were recorded)"


def git_revision() -> str:
  """This work tree's revision (`engine.git_revision()`: short hash, "+dirty" with changes)."""
  return engine.git_revision() or "unknown (not a git checkout)"


def run_git(report: dict | None) -> str:
  """The revision a run's final.json was made with (its own "git")."""
  return (report or {}).get("git") or UNKNOWN_GIT


def machine() -> dict:
  """The engine's `machine_info()` (what final.json records) plus Python and the time."""
  return {**engine.machine_info(), "python": platform.python_version(),
          "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def results_meta(**extra) -> dict:
  """What every results file starts with: revision, machine, command."""
  return {"git": git_revision(), "machine": machine(),
          "command": " ".join(["python"] + sys.argv), **extra}


def describe(meta: dict) -> str:
  """The markdown line of a results file's `results_meta`."""
  m = meta["machine"]
  return (f"Code revision `{meta['git']}`; machine: {m['backend']} ({m['device_kind']} "
          f"x{m['device_count']}), {m['cpu_count']} CPUs, jax {m['jax']}, {m['time']}. "
          f"Command: `{meta['command']}`")


def write_results(stem: str | os.PathLike, data: dict, markdown: str | None = None) -> None:
  """`<stem>.json` (and `<stem>.md`); `data` must carry "git" and "machine"."""
  missing = [k for k in ("git", "machine") if k not in data]
  if missing:
    raise ValueError(f"results for {stem} lack {missing}")
  os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
  with open(f"{stem}.json", "w") as f:
    json.dump(data, f, indent=2, default=float)
  if markdown is not None:
    with open(f"{stem}.md", "w") as f:
      f.write(markdown)


def read_final(workdir: str) -> dict | None:
  """A finished run's final.json (None while it has not finished)."""
  path = os.path.join(workdir, "final.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def finished_run(cfg, workdir: str, objective: str = "mle") -> dict:
  """The run's final.json, training it first when it has none. A run the engine stopped
  early (SIGTERM, `train.max_steps_this_run`) ends the script with a message to rerun the
  same command (it resumes), not with an error about files a finished run would have."""
  from seqrec_jax.train import engine  # pylint: disable=import-outside-toplevel
  final = read_final(workdir) or engine.run(cfg, workdir, objective)
  if "interrupted_at_step" in final:
    raise SystemExit(f"{workdir}: stopped at step {final['interrupted_at_step']} "
                     f"({final.get('reason', '')}); run the same command again to resume")
  return final


def read_metrics(workdir: str) -> list[dict]:
  """A run's metrics.jsonl records (a line cut by a kill is skipped)."""
  path = os.path.join(workdir, "metrics.jsonl")
  out = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:
          pass
  return out


# ---- The device-path trainer the throughput scripts time --------------------------------------


def peak_flops(override_tflops: float = 0.0) -> tuple[float, str]:
  """(peak FLOP/s, where it came from). CPU: a measured float32 matmul peak."""
  if override_tflops > 0:
    return override_tflops * 1e12, "--peak_tflops"
  kind = jax.devices()[0].device_kind
  for key, tflops in PEAK_TFLOPS:
    if key.lower() in kind.lower():
      return tflops * 1e12, f"table: {key} {tflops:g} TFLOP/s bf16 dense"
  if jax.default_backend() == "cpu":
    return measured_matmul_peak(), "measured f32 matmul (CPU: MFU is only indicative)"
  return float("nan"), f"unknown device {kind!r}: pass --peak_tflops"


def measured_matmul_peak(n: int = 1024, reps: int = 5) -> float:
  """Best FLOP/s of an n x n float32 matmul on the default device."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n**3 / best


def analytic_flops(batch: int, length: int, dim: int, blocks: int, mlp: int,
                   num_items: int) -> float:
  """Training FLOPs of one SASRec step (forward x 3 for forward + backward).

  Per position and block: Q, K, V and output projections 8*D^2, MLP 4*D*F, attention
  scores and values 4*L*D (the full L x L the XLA kernel computes; causal kernels do
  about half). Per position: full-softmax logits over the catalogue 2*D*V. Embedding
  gathers, norms and the optimizer are not counted.
  """
  per_position = blocks * (8 * dim * dim + 4 * dim * mlp + 4 * length * dim) + 2 * dim * num_items
  return 3.0 * batch * length * per_position


def sasrec_config(dim: int = 64, blocks: int = 2, length: int = 200, batch: int = 128,
                  dtype: str = "float32", heads: int = 1, vocab_chunk: int = 0,
                  attention_impl: str = "") -> ml_collections.ConfigDict:
  """The SASRec training config of a benchmark row (device input, crop=last)."""
  cfg = config_lib.base_config()
  cfg.model.update(max_len=length, embed_dim=dim, num_blocks=blocks, num_heads=heads,
                   mlp_dim=4 * dim, dtype=dtype, attention_impl=attention_impl)
  cfg.train.update(batch_size=batch, input="device", num_epochs=1)
  cfg.loss.vocab_chunk = vocab_chunk
  return cfg


def load_split(cfg) -> LeaveOneOut:
  """The config's dataset and leave-one-out split, as the engine loads them."""
  return engine.load_split(cfg)[1]


def synthetic_split(num_users: int, num_items: int, length: int, seed: int = 0) -> LeaveOneOut:
  """Every user has length + 3 random items, so every training window is full."""
  rng = np.random.default_rng(seed)
  per_user = length + 3
  offsets = np.arange(num_users + 1, dtype=np.int64) * per_user
  items = rng.integers(1, num_items + 1, size=offsets[-1]).astype(np.int32)
  data = SequenceDataset(offsets=offsets, items=items, times=np.arange(offsets[-1]),
                         user_ids=np.arange(num_users), item_ids=np.arange(num_items + 1))
  return leave_one_out(data)


@dataclasses.dataclass
class Trainer:
  """Our training setup on the device path: the pieces the "mle" objective builds
  (`train/mle.py`: `build_setup`, device data, `steps.TrainSteps`), kept apart so one
  dispatch can be lowered, compiled and timed alone."""

  cfg: Any
  split: LeaveOneOut
  mesh: Any
  model: Any
  state: TrainState
  state_sh: Any
  data: device_data.DeviceCausalData
  chunk: steps.TrainSteps
  steps_per_epoch: int
  attention_impl: str


def build_trainer(cfg, split: LeaveOneOut, num_steps: int | None = None) -> Trainer:
  """Model, optimizer, state and the on-device data for `num_steps` (default: all
  epochs of the config)."""
  config_lib.validate(cfg)
  setup = build_setup(cfg, split)
  mesh, model, task, tx = setup.mesh, setup.model, setup.task, setup.tx
  state, state_sh, steps_per_epoch = setup.state, setup.state_sh, setup.steps_per_epoch
  total = num_steps or steps_per_epoch * cfg.train.num_epochs
  data = device_data.build_causal_data(
      split, task.source.users, max_len=cfg.model.max_len, batch_size=cfg.train.batch_size,
      num_steps=total, seed=cfg.seed, crop=cfg.task.crop, mesh=mesh)
  chunk = steps.TrainSteps(task.loss_fn, tx, state_sh, mesh, device_data.causal_batch)
  impl = resolve_attention_impl(cfg.model.attention_impl, models.compute_dtype(cfg.model.dtype),
                                cfg.model.embed_dim // cfg.model.num_heads)
  return Trainer(cfg, split, mesh, model, state, state_sh, data, chunk, steps_per_epoch, impl)


def _cost_flops(obj) -> float:
  try:
    cost = obj.cost_analysis()
  except Exception:  # pylint: disable=broad-except  (not every backend has one)
    return float("nan")
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def _memory(compiled) -> dict:
  out = {}
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    m = None
  if m is not None:
    for name in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
                 "alias_size_in_bytes", "generated_code_size_in_bytes"):
      out[name] = int(getattr(m, name, 0) or 0)
    out["compiled_peak_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                                  + out["temp_size_in_bytes"] - out["alias_size_in_bytes"])
  stats = jax.devices()[0].memory_stats() if hasattr(jax.devices()[0], "memory_stats") else None
  if stats:
    out["device_peak_bytes_in_use"] = int(stats.get("peak_bytes_in_use", 0))
    out["device_bytes_limit"] = int(stats.get("bytes_limit", 0))
  return out


def measure(tr: Trainer, steps_per_dispatch: int, dispatches: int) -> dict:
  """Compiles one dispatch of `steps_per_dispatch` steps, runs it once to warm up, then
  times `dispatches` more. Updates `tr.state`. -> the throughput record."""
  n = steps_per_dispatch
  fn = tr.chunk.jitted(n)
  t = time.perf_counter()
  lowered = fn.lower(tr.state, tr.data)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  xla_flops_dispatch = _cost_flops(compiled)
  # One step alone (no loop), for a per-step XLA count: cost analysis of a while loop
  # may or may not multiply its body by the trip count.
  xla_flops_step = _cost_flops(tr.chunk.jitted(1).lower(tr.state, tr.data))
  state, m = compiled(tr.state, tr.data)
  jax.block_until_ready(m)
  first = float(np.asarray(m["loss"])[-1])
  targets = 0.0
  t = time.perf_counter()
  for _ in range(dispatches):
    state, m = compiled(state, tr.data)
    targets += float(np.sum(np.asarray(m["targets"])))  # syncs on this dispatch's metrics
  elapsed = time.perf_counter() - t
  tr.state = state
  timed_steps = n * dispatches
  cfg = tr.cfg
  flops = analytic_flops(cfg.train.batch_size, cfg.model.max_len, cfg.model.embed_dim,
                         cfg.model.num_blocks, cfg.model.mlp_dim, tr.split.data.num_items)
  return {
      "steps_per_dispatch": n, "timed_steps": timed_steps, "seconds": elapsed,
      "compile_s": compile_s, "steps_per_s": timed_steps / elapsed,
      "targets_per_s": targets / elapsed,
      "tokens_per_s": timed_steps * cfg.train.batch_size * cfg.model.max_len / elapsed,
      "loss_first": first, "loss_last": float(np.asarray(m["loss"])[-1]),
      "flops_analytic_step": flops, "flops_xla_step": xla_flops_step,
      "flops_xla_dispatch": xla_flops_dispatch, **_memory(compiled)}


def fmt_si(x: float) -> str:
  if x != x:  # nan
    return "n/a"
  for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
    if abs(x) >= div:
      return f"{x / div:.3g}{unit}"
  return f"{x:.3g}"


# ---- RecBole (the peer), run in its own venv through recbole_worker.py ------------------------

WORKER = REPO / "benchmarks" / "recbole_worker.py"


def write_recbole_atomic(data: SequenceDataset, folder: str, name: str = "ml1m") -> str:
  """Writes `data` as RecBole atomic files `<folder>/<name>/<name>.inter`.

  Ids are our raw user/item ids; `timestamp` is the interaction's index in our CSR
  order (each user's history in our chronological order with its stable tie-break),
  so RecBole's `order: TO` reproduces our sequences exactly: RecBole stores float
  fields as float32, which cannot order raw unix seconds (1e9 s in float32 has 64 s
  steps), and equal timestamps would leave ties to its sort. -> the dataset folder.
  """
  path = os.path.join(folder, name)
  os.makedirs(path, exist_ok=True)
  users = np.repeat(data.user_ids, np.diff(data.offsets))  # [N]
  items = data.item_ids[data.items]  # [N]
  with open(os.path.join(path, f"{name}.inter"), "w") as f:
    f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    for i, (u, it) in enumerate(zip(users.tolist(), items.tolist())):
      f.write(f"{u}\t{it}\t1.0\t{i}\n")
  return folder


def run_recbole(python: str, args: dict, timeout: float) -> dict:
  """Runs recbole_worker.py in RecBole's venv; -> its RESULT record (or {"error": ...})."""
  cmd = [python, str(WORKER), json.dumps(args)]
  # RecBole's Python gets RECBOLE_PYTHONPATH (e.g. where wheels were unpacked), not ours.
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JAX_PLATFORMS")}
  if os.environ.get("RECBOLE_PYTHONPATH"):
    env["PYTHONPATH"] = os.environ["RECBOLE_PYTHONPATH"]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
  except (OSError, subprocess.TimeoutExpired) as e:
    return {"error": f"{type(e).__name__}: {e}"}
  for line in proc.stdout.splitlines()[::-1]:
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-3000:]).strip()
  return {"error": f"RecBole exited {proc.returncode} without a result:\n{tail}"}


# ---- Arms of an ablation (benchmarks/ablation.py): no flags here, so tests import them ----
def parse_arms(text: str) -> list[tuple[str, dict]]:
  """'a:x.y=1,z=2;b:x.y=' -> [("a", {"x.y": "1", "z": "2"}), ("b", {"x.y": ""})]; a piece
  without '=' continues the previous value ('t=gap,hour' is one value)."""
  arms = []
  for chunk in filter(None, (c.strip() for c in text.split(";"))):
    name, sep, body = chunk.partition(":")
    if not sep or not name:
      raise ValueError(f"--arms: {chunk!r} is not 'name:key=value,...'")
    values: dict[str, str] = {}
    last = None
    for piece in filter(None, body.split(",")):
      if "=" in piece:
        last, _, value = piece.partition("=")
        values[last.strip()] = value
      elif last is None:
        raise ValueError(f"--arms: arm {name!r}: {piece!r} has no key")
      else:
        values[last] += "," + piece
    arms.append((name, values))
  if not arms:
    raise ValueError("--arms: give at least one arm")
  if len({n for n, _ in arms}) != len(arms):
    raise ValueError(f"--arms: arm names repeat: {[n for n, _ in arms]}")
  return arms


def typed_values(cfg, values: dict) -> dict:
  """Arm values (text) as the type of the config field they set: str as is, bool from
  true/false/1/0, numbers and tuples as Python literals; an unknown key fails by name."""
  known = config_schema.leaves(cfg)
  out = {}
  for key, text in values.items():
    if key not in known:
      raise ValueError(f"--arms: {config_schema.unknown_key_message(key)}")
    current = known[key]
    if isinstance(current, str):
      out[key] = text
    elif isinstance(current, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"--arms: {key}={text!r}: expected true or false")
      out[key] = text.lower() in ("true", "1")
    else:
      try:
        out[key] = type(current)(ast.literal_eval(text)) if current is not None else (
            ast.literal_eval(text))
      except (ValueError, SyntaxError, TypeError):
        raise ValueError(f"--arms: {key}={text!r}: not a {type(current).__name__}") from None
  return out
