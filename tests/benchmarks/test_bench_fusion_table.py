"""benchmarks/fusion_table.py on ML-100K with the tiny random text encoder (seconds)."""

import pytest

from benchutil import results, run_script

pytest.importorskip("tokenizers")


@pytest.mark.slow
def test_fusion_table_pairs_each_mode_with_id_overall_and_per_bucket(shared_data, tmp_path):
  run_script("fusion_table.py", "--datasets=ml100k", "--modes=id,text_only",
             f"--workdir_root={tmp_path / 'runs'}", f"--out={tmp_path}", "--tag=t",
             "--config.text.model=tiny-random", f"--config.data.cache_dir={tmp_path / 'cache'}",
             "--config.model.max_len=20", "--config.model.embed_dim=16",
             "--config.model.mlp_dim=32", "--config.train.num_epochs=1",
             "--config.train.eval_every_epochs=1", "--config.train.input=device",
             "--config.train.length_grouping=0")
  data = results(tmp_path / "t.json")
  base, text = data["rows"]
  assert (base["mode"], text["mode"]) == ("id", "text_only") and "vs_id" not in base
  users = base["excl/ndcg@10"]["users"]
  assert text["vs_id"]["users"] == users == 943
  assert text["vs_id"]["diff"] == pytest.approx(
      text["excl/ndcg@10"]["mean"] - base["excl/ndcg@10"]["mean"], abs=1e-9)
  assert sum(b["users"] for b in text["bucket_se"].values()) == users
  for name, b in text["bucket_se"].items():  # per-bucket figures match the engine's own
    assert b["mean"] == pytest.approx(text["buckets"][name]["ndcg@10"], abs=1e-6)
    assert b["vs_id"]["users"] == b["users"]
