"""benchmarks/length_grouping.py on the synthetic smoke config."""

import pytest

from benchutil import SMOKE, results, run_script


@pytest.mark.slow
def test_length_grouping_smoke(tmp_path):
  run_script("length_grouping.py", SMOKE, "--groups=0,4", "--config.model.max_len=10",
             f"--out={tmp_path}", "--tag=lg")
  data = results(tmp_path / "lg.json")
  assert [r["group_batches"] for r in data["rows"]] == [0, 4]
  assert data["config"] == "configs/default.py:smoke"
  assert all(r["steps"] > 0 and 0 <= r["padding_share"] < 1 for r in data["rows"])
