"""benchmarks/throughput.py and compare_recbole.py (without RecBole) on tiny shapes."""

import pytest

from benchutil import SMOKE, results, run_script


@pytest.mark.slow
def test_throughput_smoke(tmp_path):
  run_script("throughput.py", SMOKE, "--preset=cpu", "--dims=16", "--blocks=1", "--lengths=8",
             "--batches=8", "--items=50", "--steps_per_dispatch=2", "--dispatches=1",
             "--peak_tflops=1", f"--out={tmp_path}", "--tag=tp")
  data = results(tmp_path / "throughput_tp.json")
  assert [r["data"] for r in data["rows"]] == ["configs/default.py:smoke", "synthetic"]
  assert all("error" not in r and r["steps_per_s"] > 0 for r in data["rows"])


@pytest.mark.slow
def test_compare_recbole_without_recbole(tmp_path):
  run_script("compare_recbole.py", SMOKE, f"--recbole_python={tmp_path / 'none'}",
             "--steps_per_dispatch=2", "--dispatches=1", "--repeat_ours=off",
             f"--out={tmp_path}", "--tag=rb")
  data = results(tmp_path / "compare_recbole_rb.json")
  assert "not found" in data["recbole"]["error"]
  assert data["ours"][0]["targets_per_s"] > 0
