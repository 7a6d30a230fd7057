"""Kill anywhere, resume exactly: SIGKILL a training run at many moments, rerun the same
command each time, and check that the finished run equals an uninterrupted one.

    python benchmarks/kill_resume.py --kills 20 --out benchmarks/results/kill_resume.json

Each kill is aimed at one phase, in turn: during training steps, during validation,
while a latest checkpoint is being written (its `*.orbax-checkpoint-tmp*` folder
exists), during the best-model save, and during start-up (restore / compilation); the
phase the process was really in is recorded. Before each rerun the newest complete
checkpoint step on disk is noted, and the rerun must report "resumed from step <that>"
(or start fresh when there is none). At the end:
  * final.json's best step, validation and test metrics equal the uninterrupted run's
    (exactly: same CPU programs, same data order, same RNG per step);
  * metrics.jsonl has no (kind, step) twice, and every validation / train record
    (timings aside) equals the uninterrupted run's at the same step.
Exit status 0 when everything matched; the JSON summary is written to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASES = ("step", "eval", "checkpoint_write", "best_save", "startup")
TIMING = {"steps_per_s", "step_time_s", "time", "targets_per_s", "wall"}  # clock readings


def command(workdir: Path, config: str, overrides: list[str]) -> list[str]:
  return [sys.executable, "-m", "seqrec_jax.train", f"--config={config}",
          f"--workdir={workdir}", *overrides]


STARTUP_S = 10.0  # the reference run's seconds to its first train line
COMPILE_CACHE = ""  # set by --compile_cache: every run (reference included) shares it


def env() -> dict:
  e = dict(os.environ)
  e.setdefault("JAX_PLATFORMS", "cpu")
  e.pop("XLA_FLAGS", None)  # one CPU device, as a user's run
  if COMPILE_CACHE:  # restarts load compiled programs instead of compiling them again
    e.update(JAX_COMPILATION_CACHE_DIR=COMPILE_CACHE,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return e


def complete_steps(folder: Path) -> list[int]:
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def tmp_names(folder: Path) -> set[str]:
  try:
    return {p.name for p in folder.iterdir() if "orbax-checkpoint-tmp" in p.name}
  except OSError:
    return set()


def tmp_saves(folder: Path, old: set[str] = frozenset()) -> bool:
  """A save in progress: a temporary step folder that was not there when the run began
  (a killed run's leftovers are removed by the next one's checkpoint manager)."""
  return bool(tmp_names(folder) - set(old))


class Run:
  """One process of the command, its stdout lines collected by a thread."""

  def __init__(self, cmd: list[str], log):
    self.proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1)
    self.lines: list[str] = []
    self.times: list[float] = []  # seconds from the start to each line
    self.t0 = time.time()
    self.old = {}  # leftover temporary folders, by checkpoint folder
    self.log = log
    self.reader = threading.Thread(target=self._read, daemon=True)
    self.reader.start()

  def _read(self):
    for line in self.proc.stdout:
      self.times.append(time.time() - self.t0)
      self.lines.append(line.rstrip("\n"))
      self.log.write(line)
    self.log.flush()

  def done(self) -> bool:
    return self.proc.poll() is not None

  def kill(self):
    self.proc.send_signal(signal.SIGKILL)
    self.proc.wait()
    self.reader.join(timeout=10)


def wait_for(run: Run, cond, timeout: float, poll: float = 0.005) -> bool:
  end = time.time() + timeout
  while time.time() < end:
    if run.done():
      return False
    if cond():
      return True
    time.sleep(poll)
  return False


def _train_step(line: str) -> int | None:
  m = re.search(r"epoch \d+/\d+ step (\d+)/\d+", line)
  return int(m.group(1)) if m else None


def aim(run: Run, phase: str, wd: Path, rng: random.Random, timeout: float,
        after_step: int = 0) -> bool:
  """Waits for a moment of `phase` in `run` once it has trained past `after_step` (so
  the kills spread over the whole run); True when it came (then kill at once)."""
  n0 = 0
  if phase != "startup" and after_step > 0:
    def past():
      for i, l in enumerate(run.lines):
        s = _train_step(l)
        if s is not None and s >= after_step:
          return i + 1
      return 0
    if not wait_for(run, lambda: past() > 0, timeout):
      return False
    n0 = past()
  else:
    n0 = len(run.lines)
  new = lambda pat: any(re.search(pat, l) for l in run.lines[n0:])
  if phase == "startup":  # a moment before the first step (imports, data, restore, compile)
    delay = rng.uniform(0.2, 0.9) * STARTUP_S
    return wait_for(run, lambda: time.time() - run.t0 >= delay or new(r" step \d+/\d+ loss"),
                    timeout)
  if phase == "step":
    if not wait_for(run, lambda: new(r"epoch \d+/\d+ step \d+/\d+"), timeout):
      return False
    time.sleep(rng.uniform(0.0, 0.3))
    return not run.done()
  if phase == "eval":  # right after an epoch's last train line, before its "valid" line
    def at_epoch_end():
      for l in run.lines[n0:]:
        m = re.search(r"epoch \d+/(\d+) step (\d+)/(\d+)", l)
        if m and int(m.group(2)) % (int(m.group(3)) // int(m.group(1))) == 0:
          return True
      return False
    if not wait_for(run, at_epoch_end, timeout):
      return False
    time.sleep(rng.uniform(0.0, 0.15))
    return not run.done()
  if phase == "checkpoint_write":
    return wait_for(run, lambda: tmp_saves(wd / "checkpoints", run.old["checkpoints"]), timeout,
                    poll=0.002)
  if phase == "best_save":
    return wait_for(run, lambda: tmp_saves(wd / "best", run.old["best"])
                    or new(r"valid step .*\*best\*"), timeout, poll=0.002)
  raise ValueError(phase)


def observed_phases(run: Run, wd: Path, aimed: str) -> list[str]:
  """What the process was doing when killed, from its folders and its lines: a save in
  progress (its temporary folder) and the aimed phase when consistent with the lines
  (a background checkpoint write can overlap training steps or validation)."""
  seen = []
  if tmp_saves(wd / "best", run.old["best"]):
    seen.append("best_save")
  if tmp_saves(wd / "checkpoints", run.old["checkpoints"]):
    seen.append("checkpoint_write")
  trained = any(re.search(r" step \d+/\d+ loss", l) for l in run.lines)
  if aimed == "startup" and not trained:
    seen.append("startup")
  elif aimed == "startup":
    seen.append("step")  # start-up was over sooner than aimed: killed at the first step
  elif aimed in ("step", "eval") and trained:
    seen.append(aimed)
  elif aimed == "best_save" and not seen:
    seen.append("best_save")  # the "*best*" line came and the save had not begun its folder
  return seen or [aimed]


def records(path: Path) -> list[dict]:
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def compare(ref_dir: Path, wd: Path) -> list[str]:
  """Differences between the uninterrupted run and the killed-and-resumed one."""
  problems = []
  a, b = json.loads((ref_dir / "final.json").read_text()), json.loads((wd / "final.json").read_text())
  for key in ("best_step", "best_epoch", "valid", "test", "num_items", "num_users"):
    if a[key] != b[key]:
      problems.append(f"final.json {key}: {a[key]!r} != {b[key]!r}")
  ra, rb = records(ref_dir / "metrics.jsonl"), records(wd / "metrics.jsonl")
  keys_b = [(r["kind"], r.get("phase", ""), r["step"]) for r in rb]
  dups = {k for k in keys_b if keys_b.count(k) > 1}
  if dups:
    problems.append(f"metrics.jsonl has duplicated records: {sorted(dups)[:5]}")
  strip = lambda r: {k: v for k, v in r.items() if k not in TIMING}
  by_key = {(r["kind"], r.get("phase", ""), r["step"]): strip(r) for r in ra}
  got = {(r["kind"], r.get("phase", ""), r["step"]): strip(r) for r in rb}
  if set(by_key) != set(got):
    problems.append(f"metrics.jsonl records differ: missing {sorted(set(by_key) - set(got))[:5]},"
                    f" extra {sorted(set(got) - set(by_key))[:5]}")
  for k in sorted(set(by_key) & set(got)):
    if by_key[k] != got[k]:
      problems.append(f"metrics.jsonl {k}: {by_key[k]} != {got[k]}")
      break
  return problems


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--kills", type=int, default=20)
  p.add_argument("--config", default="configs/default.py:smoke")
  p.add_argument("--epochs", type=int, default=10)
  p.add_argument("--users", type=int, default=600)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workdir", default="")
  p.add_argument("--out", default="")
  p.add_argument("--time_limit", type=float, default=1800.0, help="seconds, whole harness")
  p.add_argument("--keep", action="store_true")
  p.add_argument("--no_compile_cache", action="store_true",
                 help="compile every program in every run (slower restarts)")
  args = p.parse_args(argv)
  global COMPILE_CACHE
  t_start = time.time()
  rng = random.Random(args.seed)
  root = Path(args.workdir or tempfile.mkdtemp(prefix="kill_resume."))
  root.mkdir(parents=True, exist_ok=True)
  if not args.no_compile_cache:
    COMPILE_CACHE = str(root / "jax_cache")
  batch = 32
  overrides = [f"--config.data.synthetic.num_users={args.users}",
               f"--config.train.num_epochs={args.epochs}", "--config.train.eval_every_epochs=1",
               f"--config.train.batch_size={batch}", "--config.train.log_every_steps=3",
               "--config.train.checkpoint_every_secs=0.5", "--config.train.max_to_keep=2"]
  log = open(root / "harness.log", "w")
  summary: dict = {"config": args.config, "overrides": overrides, "kills": [],
                   "aimed": {}, "observed": {}, "resume_checks": 0}

  # 1. The uninterrupted reference.
  ref = Run(command(root / "ref", args.config, overrides), log)
  ref.proc.wait(timeout=args.time_limit)
  ref.reader.join(timeout=10)
  if ref.proc.returncode != 0:
    print("reference run failed; see", root / "harness.log")
    return 1
  summary["reference_seconds"] = round(time.time() - ref.t0, 1)
  global STARTUP_S
  STARTUP_S = next((t for t, l in zip(ref.times, ref.lines) if re.search(r" step \d+/", l)),
                   10.0)
  total = max((int(m.group(1)) for l in ref.lines
               for m in [re.search(r"step \d+/(\d+)", l)] if m), default=0)
  quota = max(total // (args.kills + 2), 1)  # steps of progress between kills, on average

  # 2. The same command, killed again and again.
  wd = root / "killed"
  cmd = command(wd, args.config, overrides)
  failures: list[str] = []
  attempt = 0
  finished = False
  while not finished:
    if time.time() - t_start > args.time_limit:
      failures.append(f"time limit {args.time_limit}s reached after {len(summary['kills'])} kills")
      break
    expect = max(complete_steps(wd / "checkpoints"), default=None)
    old = {sub: tmp_names(wd / sub) for sub in ("checkpoints", "best")}
    run = Run(cmd, log)
    run.old = old
    phase = PHASES[attempt % len(PHASES)] if len(summary["kills"]) < args.kills else None
    attempt += 1
    after = (expect or 0) + rng.randint(0, 2 * quota)
    hit = phase is not None and aim(run, phase, wd, rng,
                                    timeout=max(args.time_limit - (time.time() - t_start), 1),
                                    after_step=after)
    if hit:
      run.kill()
    else:
      run.proc.wait(timeout=max(args.time_limit - (time.time() - t_start), 1))
      run.reader.join(timeout=10)
    # restarts load compiled programs from the cache: their start-ups are shorter
    STARTUP_S = min([STARTUP_S] + [t for t, l in zip(run.times, run.lines)
                                   if re.search(r" step \d+/", l)][:1])
    resumed = [int(m.group(1)) for l in run.lines
               for m in [re.search(r"resumed from step (\d+)", l)] if m]
    trained = any(re.search(r" step \d+/\d+ loss", l) for l in run.lines)
    if resumed or (expect is not None and trained):  # (a start-up kill may come before it)
      summary["resume_checks"] += 1
      if (resumed[0] if resumed else None) != expect:
        failures.append(f"attempt {attempt}: resumed from {resumed[:1]} but the newest "
                        f"complete checkpoint was {expect}")
    if hit:
      seen = observed_phases(run, wd, phase)
      summary["kills"].append({"aimed": phase, "observed": seen, "resume_expected": expect,
                               "at_s": round(time.time() - run.t0, 2)})
      summary["aimed"][phase] = summary["aimed"].get(phase, 0) + 1
      for s in seen:
        summary["observed"][s] = summary["observed"].get(s, 0) + 1
      continue
    if run.proc.returncode != 0:
      failures.append(f"attempt {attempt}: exit status {run.proc.returncode}")
      break
    finished = True
  summary["runs"] = attempt
  if finished:
    failures += compare(root / "ref", wd)
  summary["failures"] = failures
  summary["ok"] = finished and not failures and len(summary["kills"]) >= args.kills
  summary["seconds"] = round(time.time() - t_start, 1)
  text = json.dumps(summary, indent=2)
  if args.out:
    Path(args.out).write_text(text + "\n")
  print(text)
  log.close()
  if summary["ok"] and not args.keep and not args.workdir:
    shutil.rmtree(root, ignore_errors=True)
  return 0 if summary["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
