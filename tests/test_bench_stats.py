"""benchmarks/stats.py on synthetic ranks files."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "stats.py"
_spec = importlib.util.spec_from_file_location("bench_stats", _PATH)
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)

NUM_ITEMS = 500


def _write(path: Path, users, rank, rank_excl=None) -> Path:
  users = np.asarray(users, np.int64)
  rank = np.asarray(rank, np.int32)
  rank_excl = rank if rank_excl is None else np.asarray(rank_excl, np.int32)
  np.savez(path, users=users, rank=rank, rank_excl=rank_excl, num_items=np.int64(NUM_ITEMS))
  return path


def _ranks(seed: int, n: int = 400, scale: float = 30.0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return np.minimum(rng.exponential(scale, n).astype(np.int32), NUM_ITEMS - 1)


def test_per_user_metrics_match_definitions():
  r = np.array([0, 1, 4, 9, 10, 100])
  np.testing.assert_array_equal(stats.per_user(r, "hr@10"), [1, 1, 1, 1, 0, 0])
  np.testing.assert_allclose(stats.per_user(r, "ndcg@10"),
                             [1, 1 / np.log2(3), 1 / np.log2(6), 1 / np.log2(11), 0, 0])
  np.testing.assert_allclose(stats.per_user(r, "mrr@5"), [1, 0.5, 0.2, 0, 0, 0])
  with pytest.raises(ValueError):
    stats.per_user(r, "recall10")


def test_single_run_mean_and_se_match_numpy(tmp_path):
  rank = _ranks(0)
  excl = np.maximum(rank - 3, 0)
  run = tmp_path / "run"
  run.mkdir()
  _write(run / "ranks_test.npz", np.arange(rank.size)[::-1], rank, excl)
  out = stats.summarize(stats.load_ranks(str(run)), ["ndcg@10", "hr@10", "mrr@10"])
  ndcg = np.where(rank < 10, 1 / np.log2(rank + 2.0), 0)
  hr = (rank < 10).astype(float)
  mrr = np.where(rank < 10, 1 / (rank + 1.0), 0)
  for name, v in (("ndcg@10", ndcg), ("hr@10", hr), ("mrr@10", mrr)):
    assert out[name]["mean"] == pytest.approx(v.mean(), rel=1e-12)
    assert out[name]["se"] == pytest.approx(np.std(v, ddof=1) / math.sqrt(v.size), rel=1e-12)
    assert out[name]["users"] == rank.size
  # HR's SE is the binomial one
  p = hr.mean()
  assert out["hr@10"]["se"] == pytest.approx(math.sqrt(p * (1 - p) / (rank.size - 1)))
  # --excl reads rank_excl
  out_excl = stats.summarize(str(run / "ranks_test.npz"), ["ndcg@10"], excl=True)
  v = np.where(excl < 10, 1 / np.log2(excl + 2.0), 0)
  assert out_excl["ndcg@10"]["mean"] == pytest.approx(v.mean())


def test_paired_difference_is_aligned_by_user(tmp_path):
  ra, rb = _ranks(1), _ranks(2)
  users = np.arange(ra.size) + 7
  perm = np.random.default_rng(3).permutation(ra.size)
  a = _write(tmp_path / "a.npz", users, ra)
  b = _write(tmp_path / "b.npz", users[perm], rb[perm])  # same users, other order
  out = stats.paired(str(a), str(b), ["ndcg@10", "hr@5"])
  for name in ("ndcg@10", "hr@5"):
    d = stats.per_user(ra, name) - stats.per_user(rb, name)
    assert out[name]["diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert out[name]["se"] == pytest.approx(np.std(d, ddof=1) / math.sqrt(d.size), rel=1e-12)
    assert out[name]["a"] - out[name]["b"] == pytest.approx(out[name]["diff"], abs=1e-12)


def test_verdicts(tmp_path):
  users = np.arange(300)
  rank = _ranks(4, 300)
  base = _write(tmp_path / "base.npz", users, rank)
  # Identical runs: diff 0, SE 0 -> tie.
  same = stats.paired(str(base), str(base), ["ndcg@10"])["ndcg@10"]
  assert same["diff"] == 0 and same["verdict"] == "tie"
  # A small noisy perturbation: a tie (|diff| < 2 SE).
  rng = np.random.default_rng(5)
  noisy = np.maximum(rank + rng.integers(-2, 3, rank.size), 0)
  tie = stats.paired(str(base), str(_write(tmp_path / "n.npz", users, noisy)), ["ndcg@10"])
  r = tie["ndcg@10"]
  assert abs(r["diff"]) < 2 * r["se"] and r["verdict"] == "tie"
  # B puts every target at rank 0: B clearly better, and A better the other way round.
  best = _write(tmp_path / "best.npz", users, np.zeros_like(rank))
  assert stats.paired(str(base), str(best), ["ndcg@10"])["ndcg@10"]["verdict"] == "B better"
  assert stats.paired(str(best), str(base), ["ndcg@10"])["ndcg@10"]["verdict"] == "A better"
  assert stats.verdict(0.01, 0.006) == "tie" and stats.verdict(-0.013, 0.006) == "B better"


def test_misaligned_users_error(tmp_path):
  rank = _ranks(6, 50)
  a = _write(tmp_path / "a.npz", np.arange(50), rank)
  b = _write(tmp_path / "b.npz", np.arange(1, 51), rank)
  with pytest.raises(ValueError, match="different users"):
    stats.paired(str(a), str(b))
  c = _write(tmp_path / "c.npz", np.arange(49), rank[:49])
  with pytest.raises(ValueError, match="different users"):
    stats.paired(str(a), str(c))
  with pytest.raises(SystemExit):
    stats.main([str(a), str(b)])


def test_duplicate_users_and_missing_file(tmp_path):
  d = _write(tmp_path / "d.npz", [0, 1, 1], [0, 1, 2])
  with pytest.raises(ValueError, match="duplicate"):
    stats.load_ranks(str(d))
  with pytest.raises(FileNotFoundError, match="ranks_valid.npz"):
    stats.load_ranks(str(tmp_path), split="valid")


def test_cli_single_and_paired_json(tmp_path, capsys):
  users = np.arange(200)
  run_a, run_b = tmp_path / "A", tmp_path / "B"
  run_a.mkdir()
  run_b.mkdir()
  _write(run_a / "ranks_valid.npz", users, _ranks(7, 200))
  _write(run_b / "ranks_valid.npz", users, _ranks(8, 200))
  out = tmp_path / "one.json"
  rep = stats.main([str(run_a), "--split=valid", "--metrics=ndcg@10,hr@10", f"--json={out}"])
  assert rep["mode"] == "single" and json.loads(out.read_text())["metrics"].keys() == {
      "ndcg@10", "hr@10"}
  assert "ndcg@10" in capsys.readouterr().out
  rep = stats.main([f"--ranks={run_a / 'ranks_valid.npz'}",
                    f"--ranks={run_b / 'ranks_valid.npz'}", "--metrics=mrr@10", "--excl"])
  assert rep["mode"] == "paired" and rep["metrics"]["mrr@10"]["verdict"] in (
      "tie", "A better", "B better")
  with pytest.raises(SystemExit):
    stats.main([])


def test_se_from_results_bounds_contain_the_exact_se():
  spec = importlib.util.spec_from_file_location("se_from_results",
                                                _PATH.with_name("se_from_results.py"))
  se_mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(se_mod)
  for seed in range(5):
    rank = _ranks(seed, 3000, scale=40.0)
    block = {"users": rank.size}
    for k in (1, 5, 10, 20):
      for kind in ("hr", "ndcg", "mrr"):
        block[f"{kind}@{k}"] = float(np.float32(stats.per_user(rank, f"{kind}@{k}").mean()))
    exact = stats.summarize({"users": np.arange(rank.size), "rank": rank},
                            ["ndcg@10", "mrr@10", "hr@10"])
    for metric in ("ndcg@10", "mrr@10"):
      b = se_mod.se_bounds(block, metric)
      assert b["bins"] == [1, 5, 10] and not b["exact"]
      assert b["se_low"] - 1e-6 <= exact[metric]["se"] <= b["se_high"] + 1e-6
      assert b["se_high"] - b["se_low"] < 0.1 * exact[metric]["se"]
    hr = se_mod.se_bounds(block, "hr@10")
    assert hr["exact"] and hr["se_low"] == pytest.approx(exact["hr@10"]["se"], rel=1e-5)
  # Without intermediate cut-offs the bounds are wider but still hold.
  coarse = {"users": rank.size, "hr@10": block["hr@10"], "ndcg@10": block["ndcg@10"]}
  b = se_mod.se_bounds(coarse, "ndcg@10")
  assert b["bins"] == [10] and b["se_low"] - 1e-6 <= exact["ndcg@10"]["se"] <= b["se_high"] + 1e-6


def test_users_subset(tmp_path):
  rank = _ranks(9, 100)
  users = np.arange(100) * 3
  a = _write(tmp_path / "a.npz", users, rank)
  (tmp_path / "u.txt").write_text("# a group\n0\n3\n6\n9\n12\n")
  rep = stats.main([str(a), f"--users={tmp_path / 'u.txt'}", "--metrics=hr@50"])
  v = stats.per_user(rank[:5], "hr@50")
  assert rep["metrics"]["hr@50"]["users"] == 5
  assert rep["metrics"]["hr@50"]["mean"] == pytest.approx(v.mean())
  np.save(tmp_path / "bad.npy", np.array([0, 1]))  # user 1 is not in the run
  with pytest.raises(SystemExit):
    stats.main([str(a), f"--users={tmp_path / 'bad.npy'}"])


def test_bucket_users_from_saved_target_counts_reproduce_the_engines_bucket_metrics(
    smoke_workdir):
  """ranks_test.npz records each user's target and its training count: restricting to a
  popularity bucket gives exactly the engine's own "excl/pop<=5/ndcg@10" figures."""
  run = stats.load_ranks(smoke_workdir)
  assert run["targets"] is not None and run["targets"].shape == run["users"].shape
  final = json.loads((Path(smoke_workdir) / "final.json").read_text())["test"]
  from seqrec_jax import metrics  # pylint: disable=import-outside-toplevel
  edges = (5, 20)  # the smoke run's eval.popularity_buckets (the default)
  index = metrics.popularity_bucket_index(run["target_counts"], edges)
  checked = 0
  for b, name in enumerate(metrics.bucket_names(edges)):
    users = run["users"][index == b]
    assert users.size == final.get(f"excl/pop{name}/users", 0)
    if users.size >= 2:
      got = stats.summarize(stats.restrict(run, users), ["ndcg@10"], excl=True)["ndcg@10"]
      assert got["mean"] == pytest.approx(final[f"excl/pop{name}/ndcg@10"], abs=1e-6)
      checked += 1
  assert checked >= 1
