"""benchmarks/multistep.py on the synthetic smoke preset."""

import pytest

from benchutil import results, run_script


@pytest.mark.slow
def test_multistep_smoke(tmp_path):
  run_script("multistep.py", "--dataset=synthetic", "--models=sasrec", "--variant=smoke",
             "--k=2", "--beams=2", "--config.train.num_epochs=1",
             f"--workdir_root={tmp_path / 'runs'}", f"--out={tmp_path}", "--tag=ms")
  data = results(tmp_path / "ms.json")
  assert {r["method"] for r in data["rows"]} == {"top10", "greedy", "beam2"}
  assert all(r["git"] for r in data["rows"]) and data["users"] > 0
