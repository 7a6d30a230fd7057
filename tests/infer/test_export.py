"""Export: the StableHLO recommend function runs in a fresh process with only jax and
numpy, any batch size (symbolic), and serves the same results as the workdir."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seqrec_jax.infer import export as export_lib
from seqrec_jax.infer.recommend import Recommender, Request



@pytest.fixture(scope="module")
def exported(smoke_workdir, tmp_path_factory):
  workdir = smoke_workdir
  out = tmp_path_factory.mktemp("export")
  meta = export_lib.export_recommender(workdir, str(out), k=20, platforms=("cpu",))
  return workdir, str(out), meta, Recommender.from_workdir(workdir, k_max=20)


def test_meta_and_files(exported):
  _, out, meta, rec = exported
  assert meta["format"] == export_lib.FORMAT and meta["k"] == 20
  assert meta["max_len"] == rec.max_len and meta["num_items"] == rec.num_items
  assert meta["version"] == rec.version
  for name in ("recommend.jax.bin", "params.npz", "ids.npz", "meta.json", "standalone.py"):
    assert os.path.exists(os.path.join(out, name))


def test_fresh_process_with_only_jax_and_numpy(exported, tmp_path):
  _, out, _, rec = exported
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  env["JAX_PLATFORMS"] = "cpu"
  u = rec.user_ids[4].item()
  for args, want in ((["--user", str(u), "--k", "6"], rec.recommend(user=u, k=6)),
                     (["--history", "3,4,5", "--k", "4", "--keep_seen"],
                      rec.recommend(history=[3, 4, 5], k=4, exclude_seen=False))):
    proc = subprocess.run([sys.executable, os.path.join(out, "standalone.py"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["imported_project_modules"] == []  # no seqrec_jax, flax or optax
    got = result["recommendations"]
    assert [e["item"] for e in got] == [e["item"] for e in want]
    np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want],
                               rtol=1e-5, atol=1e-5)


def test_symbolic_batch_matches_the_jitted_function(exported):
  _, out, _, rec = exported
  fn = export_lib.ExportedFunction(out)
  rng = np.random.default_rng(0)
  for batch in (1, 3, 256):
    history = np.zeros((batch, rec.max_len), np.int32)
    for row in range(batch):
      n = rng.integers(1, rec.max_len + 1)
      history[row, :n] = rng.integers(1, rec.num_items + 1, n)
    cand = rng.random((batch, rec.num_items + 1)) < 0.7
    got_items, got_scores = (np.asarray(x) for x in fn(history, cand))
    want_items, want_scores = (np.asarray(x) for x in rec.scorer(history, cand))
    assert got_items.shape == (batch, 20)
    np.testing.assert_array_equal(got_items, want_items)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_load_recommender_serves_like_the_workdir(exported):
  _, out, _, rec = exported
  served = export_lib.load_recommender(out)
  assert served.info["source"] == "export" and served.version == rec.version
  reqs = [Request(user=rec.user_ids[u].item(), k=8) for u in range(6)]
  reqs.append(Request(history=[1, 2, 3], k=5, allow=list(range(1, 30)), exclude=[4, 5]))
  assert served.recommend_batch(reqs) == rec.recommend_batch(reqs)
