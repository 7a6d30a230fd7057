"""benchmarks/ablation.py: arms parsed and typed against the config, and a smoke run
whose second arm is paired with the first on the same users."""

import os
import sys

import pytest

from benchutil import REPO, results, run_script

sys.path.insert(0, str(REPO / "benchmarks"))
import common  # noqa: E402  pylint: disable=wrong-import-position  (no flags: safe to import)

from seqrec_jax.config import base_config  # noqa: E402


def test_arms_parse_with_commas_inside_values_and_take_the_fields_types():
  arms = common.parse_arms("none:model.time_features=;t:model.time_features=gap,hour,"
                             "optim.lr=0.002,train.packing=true,eval.ks=(1, 10)")
  assert arms[0] == ("none", {"model.time_features": ""})
  name, values = arms[1]
  assert name == "t" and values["model.time_features"] == "gap,hour"
  typed = common.typed_values(base_config(), values)
  assert typed == {"model.time_features": "gap,hour", "optim.lr": 0.002,
                   "train.packing": True, "eval.ks": (1, 10)}
  with pytest.raises(ValueError, match="num_block"):
    common.typed_values(base_config(), {"model.num_block": "3"})
  for bad in ("nocolon", "a:x=1;a:x=2", ":x=1", "a:novalue"):
    with pytest.raises(ValueError, match="--arms"):
      common.parse_arms(bad)


@pytest.mark.slow
def test_ablation_smoke(tmp_path):
  run_script("ablation.py", "--preset=default", "--variant=smoke", "--tag=ab",
             "--arms=none:model.time_features=;gap:model.time_features=gap",
             f"--workdir_root={tmp_path}", f"--out={tmp_path}")
  data = results(tmp_path / "ab.json")
  first, second = data["rows"]
  assert "vs_first" not in first and second["vs_first"]["excl/ndcg@10"]["users"] > 0
  assert second["config"]["model"]["time_features"] == "gap"
  assert first["config"]["model"]["time_features"] == ""
  assert os.path.exists(os.path.join(second["workdir"], "ranks_test.npz"))
  assert "| gap |" in (tmp_path / "ab.md").read_text()
  assert second["buckets"] and all("vs_id" in b for b in second["buckets"].values())


@pytest.mark.slow
def test_step_ablation_smoke(tmp_path):
  """benchmarks/step_ablation.py: every arm timed in every repeat, the empty arm is the
  preset, and its scratch runs are removed."""
  run_script("step_ablation.py", "--preset=default", "--variant=smoke", "--tag=sa",
             "--arms=base:;k8:loss.name=sampled_softmax,loss.num_negatives=8",
             "--steps=40", "--repeats=2", f"--workdir_root={tmp_path / 'runs'}",
             f"--out={tmp_path}")
  data = results(tmp_path / "sa.json")
  base, k8 = data["arms"]
  assert base["values"] == {} and k8["values"]["loss.num_negatives"] == "8"
  assert len(base["step_s"]) == 2 and all(s > 0 for s in base["step_s"] + k8["step_s"])
  assert not os.listdir(tmp_path / "runs" / "sa")
