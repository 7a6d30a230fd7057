"""benchmarks/generation_speed.py on tiny random models."""

import pytest

from benchutil import results, run_script


@pytest.mark.slow
def test_generation_speed_smoke(tmp_path):
  run_script("generation_speed.py", "--items=40", "--max_len=8", "--dim=16", "--blocks=1",
             "--batch=4", "--steps=2", "--beams=1,2", "--repeats=1", "--no_uncached",
             f"--out={tmp_path}", "--tag=gen")
  data = results(tmp_path / "gen.json")
  assert {(r["model"], r["beams"]) for r in data["rows"]} == {
      ("sasrec", 1), ("sasrec", 2), ("seq2seq", 1), ("seq2seq", 2)}
