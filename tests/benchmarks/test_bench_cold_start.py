"""benchmarks/cold_start.py on ML-100K with the tiny random text encoder (seconds)."""

import pytest

from benchutil import results, run_script

pytest.importorskip("tokenizers")


@pytest.mark.slow
def test_cold_start_reports_models_and_knn_on_the_same_cold_users(shared_data, tmp_path):
  run_script("cold_start.py", "--datasets=ml100k", "--modes=id,text_only", "--variant=fast",
             f"--workdir_root={tmp_path / 'runs'}", f"--out={tmp_path}", "--tag=t",
             "--config.text.model=tiny-random", f"--config.data.cache_dir={tmp_path / 'cache'}",
             "--config.model.max_len=20", "--config.model.embed_dim=16",
             "--config.model.mlp_dim=32", "--config.train.num_epochs=1",
             "--config.train.eval_every_epochs=1", "--config.loss.num_negatives=64")
  data = results(tmp_path / "t.json")
  rows = {r["method"]: r for r in data["rows"]}
  assert set(rows) == {"id", "text_only", "knn_all_items", "knn_cold_items_only"}
  users = rows["id"]["cold_users"]
  assert users > 0 and all(r["cold_users"] == users for r in rows.values())
  # restricting to the cold items can only help the kNN baseline (an upper bound for it)
  assert rows["knn_cold_items_only"]["hr@10"] >= rows["knn_all_items"]["hr@10"]
  assert data["variant"] == "fast"
