"""benchmarks/feedback_loop.py on the synthetic smoke data: rounds, policies, updates."""

import pytest

from benchutil import results, run_script


@pytest.mark.slow
def test_feedback_loop_smoke(tmp_path):
  run_script("feedback_loop.py", "--dataset=synthetic", "--rounds=2", "--first=0.6",
             "--full_epochs=1", "--update_epochs=1", f"--workdir={tmp_path / 'runs'}",
             f"--tag={tmp_path / 'fl'}")
  data = results(tmp_path / "fl.json")
  first, second = data["rows"]
  # round 1: every policy still serves the first model
  assert first["never"] == first["incremental"] == first["full"]
  assert first["versions"]["incremental"] == "incremental"
  after = first["after"]
  assert after["incremental_seconds"] > 0 and after["full_seconds"] > 0
  assert second["versions"] == {"never": "incremental",
                                "incremental": "incremental/versions/0001", "full": "full_1"}
  assert (tmp_path / "fl.md").read_text().count("\n| ") >= 2
  # a rerun reuses every run and evaluates each round with the model of that round
  run_script("feedback_loop.py", "--dataset=synthetic", "--rounds=2", "--first=0.6",
             "--full_epochs=1", "--update_epochs=1", f"--workdir={tmp_path / 'runs'}",
             f"--tag={tmp_path / 'fl2'}")
  again = results(tmp_path / "fl2.json")
  assert [r["versions"] for r in again["rows"]] == [r["versions"] for r in data["rows"]]
  assert again["rows"][0]["incremental"] == first["incremental"]
