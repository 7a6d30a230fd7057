"""benchmarks/prepare_text_speed.py with the tiny random text encoder on ML-100K."""

import json

import pytest
from benchutil import run_script

pytest.importorskip("tokenizers")


def test_prepare_text_speed_smoke(shared_data, tmp_path):
  common = ["--config=configs/sasrec_ml100k.py", "--config.text.model=tiny-random",
            f"--config.data.cache_dir={tmp_path / 'cache'}", "--sample=64"]
  run_script("prepare_text_speed.py", *common, f"--out={tmp_path / 'full.json'}")
  full = json.loads((tmp_path / "full.json").read_text())
  assert full["num_items"] == 1682 and full["model"] == "tiny-random"
  assert full["items_per_s"] > 0 and full["steady_items_per_s"] > 0 and full["git"]
  assert full["machine"]["cpu_count"] >= 1
  run_script("prepare_text_speed.py", *common, "--items=100", f"--out={tmp_path / 's.json'}")
  sample = json.loads((tmp_path / "s.json").read_text())
  assert sample["sample_items"] == 100 and sample["projected_full_prepare_s"] > 0
  assert not list((tmp_path / "cache").glob("text-*.npy"))  # the full run wrote to a temp dir
