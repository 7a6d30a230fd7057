"""Kill anywhere, resume exactly: benchmarks/kill_resume.py with 20 SIGKILLs (slow).

The harness aims kills at training steps, validation, latest-checkpoint writes, the
best-model save and start-up, reruns the same command after each, asserts every
rerun's start step (the newest complete checkpoint), and finally compares final.json
and every metrics.jsonl record with an uninterrupted run: identical on CPU.
"""

import json

import pytest

import _runs

pytestmark = pytest.mark.reliability
KILLS = 20


def test_twenty_kills_resume_to_the_uninterrupted_result(tmp_path):
  out = tmp_path / "summary.json"
  rc = _runs.kill_resume.main(["--kills", str(KILLS), "--workdir", str(tmp_path / "runs"),
                               "--out", str(out), "--time_limit", "2000"])
  summary = json.loads(out.read_text())
  assert rc == 0 and summary["ok"], summary["failures"]
  assert len(summary["kills"]) >= KILLS
  assert summary["resume_checks"] >= KILLS // 2
  assert set(summary["aimed"]) == set(_runs.kill_resume.PHASES)
  # the kills really landed in each phase (what the process was doing when it died)
  assert set(_runs.kill_resume.PHASES) <= set(summary["observed"]), summary["observed"]
