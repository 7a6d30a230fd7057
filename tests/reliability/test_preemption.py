"""Preemption and damaged checkpoints on the real command line (subprocesses; slow).

SIGTERM and SIGINT make the trainer (MLE and adversarial) finish the step in flight,
checkpoint and exit 0 within seconds with a message; the same command resumes from
that step and ends where an uninterrupted run ends. A damaged latest / best / both
checkpoint is reported in one line naming its path and the run goes on.
"""

from __future__ import annotations

import re
import shutil
import signal
import time

import pytest

import _runs
from test_checkpoints import DAMAGE

pytestmark = pytest.mark.reliability
FLAGS = ("--config.train.num_epochs=3", "--config.train.log_every_steps=1")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  wd = tmp_path_factory.mktemp("ref")
  rc, out = _runs.run(wd, *FLAGS)
  assert rc == 0, out[-3000:]
  return _runs.final(wd)


def _stop(wd, sig, at_step, *flags, config=_runs.SMOKE, pattern=None):
  r = _runs.Run(wd, *flags, config=config)
  assert r.wait_line(pattern or rf" step {at_step}/\d+"), r.text()[-3000:]
  t0 = time.time()
  r.signal(sig)
  rc = r.finish(timeout=120)
  took = time.time() - t0
  out = r.text()
  assert rc == 0, out[-3000:]
  m = re.search(r"stopping at step (\d+) \((SIGTERM|SIGINT)\); run the same command again", out)
  assert m and m.group(2) == signal.Signals(sig).name, out[-2000:]
  assert f"received {signal.Signals(sig).name}" in out
  stopped = int(m.group(1))
  assert stopped in _runs.steps(wd / "checkpoints")
  return stopped, took


def test_sigterm_then_sigint_resume_to_the_uninterrupted_result(tmp_path, reference):
  wd = tmp_path / "run"
  first, took = _stop(wd, signal.SIGTERM, 4, *FLAGS)
  assert took < 60  # the step in flight and one checkpoint
  second, _ = _stop(wd, signal.SIGINT, first + 5, *FLAGS)
  assert second > first
  rc, out = _runs.run(wd, *FLAGS)
  assert rc == 0, out[-3000:]
  assert f"resumed from step {second}" in out
  assert _runs.same_result(_runs.final(wd), reference)


def test_sigterm_in_the_adversarial_phase(tmp_path):
  wd = tmp_path / "gan"
  stopped, _ = _stop(wd, signal.SIGTERM, None, config=_runs.GAN_SMOKE,
                     pattern=r"adversarial epoch \d+/\d+ step \d+/")
  rc, out = _runs.run(wd, config=_runs.GAN_SMOKE)
  assert rc == 0, out[-3000:]
  assert f"resumed from step {stopped}" in out
  assert (wd / "final.json").exists()


@pytest.mark.parametrize("target", ["latest", "best", "both"])
def test_damaged_checkpoint_is_named_and_the_run_goes_on(tmp_path, reference, target):
  """A finished run, its newest latest / best / both checkpoints damaged, the same command
  again: a damaged latest is named and the run retrains from the older step to the same
  result; a damaged best is named and the previous best is tested; both: the latest is
  named, the best is saved again over the damaged one, the result is the reference."""
  wd = tmp_path / "run"
  rc, out = _runs.run(wd, *FLAGS)
  assert rc == 0, out[-3000:]
  latest, best = max(_runs.steps(wd / "checkpoints")), _runs.steps(wd / "best")
  if target in ("latest", "both"):
    DAMAGE["truncated arrays"](wd / "checkpoints" / str(latest))
  if target in ("best", "both"):
    DAMAGE["garbage meta"](wd / "best" / str(best[-1]))
  rc, out = _runs.run(wd, *FLAGS)
  assert rc == 0, out[-3000:]
  assert "Traceback" not in out
  assert len(out.splitlines()) < 200  # no log storm
  named = lambda path: [l for l in out.splitlines()
                        if str(path) in l and "is damaged and was skipped" in l]
  result = _runs.final(wd)
  if target in ("latest", "both"):
    assert len(named(wd / "checkpoints" / str(latest))) == 1, out[-3000:]
    assert f"resumed from step {_runs.steps(wd / 'checkpoints')[0]}" in out or "resumed" in out
    assert _runs.same_result(result, reference)  # retrained from the older step, exactly
  if target == "both":
    assert any(f"replacing checkpoint {wd / 'best' / str(best[-1])}" in l for l in out.splitlines())
  if target == "best":
    assert len(named(wd / "best" / str(best[-1]))) == 1, out[-3000:]
    assert result["best_step"] == best[-2]  # the previous best, tested


def test_full_checkpoint_folder_stops_within_seconds_and_keeps_the_last_step(tmp_path):
  import subprocess
  wd = tmp_path / "run"
  (wd / "checkpoints").mkdir(parents=True)
  out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "seqrec-full",
                        str(wd / "checkpoints")], capture_output=True, text=True)
  if out.returncode != 0:
    pytest.skip("cannot mount a tmpfs here")
  try:
    rc, text = _runs.run(wd, *FLAGS, "--config.train.max_steps_this_run=6")
    assert rc == 0, text[-3000:]
    kept = max(_runs.steps(wd / "checkpoints"))
    try:  # fill the disk (unbuffered: the last partial write fails, nothing is left to flush)
      with open(wd / "checkpoints" / "filler", "wb", buffering=0) as f:
        while True:
          f.write(b"\0" * (1 << 16))
    except OSError:
      pass
    r = _runs.Run(wd, *FLAGS)
    rc = r.finish(timeout=600)
    text = r.text()
    assert rc == 2, text[-3000:]
    err = [l for l in text.splitlines() if l.startswith("error: CheckpointWriteError")]
    assert err and "No space left on device" in err[0], text[-3000:]  # probe or save
    assert "Traceback" not in text and len(text.splitlines()) < 200
    (wd / "checkpoints" / "filler").unlink()
    rc, text = _runs.run(wd, *FLAGS)
    assert rc == 0 and f"resumed from step {kept}" in text, text[-3000:]
  finally:
    subprocess.run(["umount", "-l", str(wd / "checkpoints")], capture_output=True)


def test_hostile_inputs_fail_in_one_line_naming_the_file(tmp_path):
  bad = tmp_path / "ratings.dat"
  bad.write_bytes(b"\xef\xbb\xbf" + b"".join(
      f"{u}::{i}::4::{978300000 + i}\n".encode() for u in (1, 2) for i in (1, 2)))
  rc, out = _runs.run(tmp_path / "w", "--config.data.format=movielens",
                      f"--config.data.path={bad}", "--config.data.cache_dir=")
  assert rc == 2
  lines = [l for l in out.splitlines() if l.startswith("error:")]
  assert lines and str(bad) in lines[0] and "3 interactions" in lines[0], out[-2000:]
  assert "Traceback" not in out
  assert not (tmp_path / "w" / "checkpoints").exists()  # rejected before training
