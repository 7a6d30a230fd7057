"""benchmarks/time_to_quality.py: an engine run, stopped by the watcher at the target."""

import pytest

from benchutil import SMOKE, results, run_script


@pytest.mark.slow
def test_time_to_quality_stops_at_the_target(tmp_path):
  run_script("time_to_quality.py", SMOKE, "--target=0.0", "--config.train.num_epochs=3",
             f"--workdir_root={tmp_path}", f"--out={tmp_path}", "--tag=t")
  data = results(tmp_path / "time_to_quality_t.json")
  ours = data["ours"]
  assert ours["stopped"] == "target reached"
  assert ours["seconds_to_target"] == ours["history"][0]["seconds"] > 0
  assert len(ours["history"]) == 1 and ours["history"][0]["epoch"] == 1
  assert ours["interrupted_at_step"] == ours["history"][0]["step"]  # the engine stopped there
  assert ours["input"] == "device"  # the script's default, under the config file
  assert ours["overrides"] == {"train.num_epochs": 3}
