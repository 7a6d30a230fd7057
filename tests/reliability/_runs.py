"""Subprocess training runs for the reliability tests (the real command line)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kill_resume", REPO / "benchmarks" / "kill_resume.py")
kill_resume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_resume)

SMOKE = "configs/default.py:smoke"
GAN_SMOKE = "configs/gan_synthetic.py:smoke"


class Run(kill_resume.Run):
  def __init__(self, workdir, *flags, config=SMOKE, log=None):
    self.logfile = open(os.devnull, "w") if log is None else log
    super().__init__(kill_resume.command(Path(workdir), config, list(flags)), self.logfile)

  def wait_line(self, pattern: str, timeout: float = 600) -> re.Match | None:
    end = time.time() + timeout
    while time.time() < end:
      for line in list(self.lines):
        m = re.search(pattern, line)
        if m:
          return m
      if self.done() and not self.reader.is_alive():
        return None
      time.sleep(0.01)
    return None

  def signal(self, sig=signal.SIGTERM):
    self.proc.send_signal(sig)

  def finish(self, timeout: float = 900) -> int:
    rc = self.proc.wait(timeout=timeout)
    self.reader.join(timeout=10)
    return rc

  def text(self) -> str:
    return "\n".join(self.lines)


def run(workdir, *flags, config=SMOKE, timeout=900) -> tuple[int, str]:
  r = Run(workdir, *flags, config=config)
  rc = r.finish(timeout)
  return rc, r.text()


def final(workdir) -> dict:
  return json.loads((Path(workdir) / "final.json").read_text())


def same_result(a: dict, b: dict) -> bool:
  return all(a[k] == b[k] for k in ("best_step", "valid", "test"))


def steps(folder) -> list[int]:
  return kill_resume.complete_steps(Path(folder))
