"""benchmarks/fast_training.py: the preset and its packed, sampled-softmax variant in one run."""

import pytest

from benchutil import results, run_script


@pytest.mark.slow
def test_fast_training_compares_full_and_fast_on_the_same_users(tmp_path):
  run_script("fast_training.py", "--preset=default", "--variant=smoke", "--tag=t",
             f"--workdir_root={tmp_path}", f"--out={tmp_path}", "--fast.loss.num_negatives=16",
             "--config.train.num_epochs=3")
  data = results(tmp_path / "fast_training_t.json")
  full, fast = data["rows"]
  assert (full["loss"], fast["loss"]) == ("ce", "sampled_softmax")
  assert fast["packing"] and not full["packing"] and fast["num_negatives"] == 16
  assert full["epochs_run"] == fast["epochs_run"] == 3
  assert len(full["epoch_seconds"]) == 2 and all(s > 0 for s in full["epoch_seconds"])
  # the target is the full run's best validation, which that run reaches at its best epoch
  assert data["target"] == max(p["ndcg@10"] for p in full["valid_curve"])
  assert full["epoch_to_target"] == full["best_epoch"]
  assert data["paired"]["ndcg@10"]["users"] == full["test_se"]["ndcg@10"]["users"]
  assert data["speedup"]["epoch"] == pytest.approx(
      full["epoch_seconds_median"] / fast["epoch_seconds_median"])
  diff = data["full_vs_fast"]  # every differing config field is recorded
  assert diff["loss.name"] == ["ce", "sampled_softmax"] and diff["train.input"] == ["grain", "device"]
  assert diff["loss.num_negatives"][1] == 16 and "model.embed_dim" not in diff
