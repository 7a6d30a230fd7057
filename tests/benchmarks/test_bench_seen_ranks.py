"""benchmarks/seen_ranks.py on a finished smoke run (read back with infer.restore)."""

import pytest

from benchutil import results, run_script, train_run


@pytest.mark.slow
def test_seen_ranks_smoke(tmp_path):
  train_run(tmp_path / "run", "--config.train.num_epochs=1")
  run_script("seen_ranks.py", str(tmp_path / "run"), f"--out={tmp_path / 'seen.json'}")
  data = results(tmp_path / "seen.json")
  run, = data["runs"]
  assert run["git"] and run["users"] == 200 and "0" in run["ndcg@10_excluding_last_k"]
