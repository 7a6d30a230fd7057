"""benchmarks/run_summary.py: the summary records the run's own revision."""

import json

from benchutil import results, run_script


def fake_run(path, final: dict | None) -> None:
  path.mkdir()
  (path / "config.json").write_text(json.dumps({"seed": 0}))
  rows = [{"kind": "train", "step": 2, "loss": 1.0, "time": 1.0},
          {"kind": "valid", "step": 2, "epoch": 1, "ndcg@10": 0.1, "hr@10": 0.2}]
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  if final is not None:
    (path / "final.json").write_text(json.dumps(final))


def test_summary_keeps_the_runs_revision(tmp_path):
  final = {"best_step": 2, "valid": {}, "test": {"ndcg@10": 0.3}}
  fake_run(tmp_path / "new", {**final, "git": "abc1234"})
  fake_run(tmp_path / "old", final)
  fake_run(tmp_path / "stopped", None)
  run_script("run_summary.py", str(tmp_path / "new"), str(tmp_path / "new.json"),
             "--command=python -m seqrec_jax.train ...", "--git=ignored")
  run_script("run_summary.py", str(tmp_path / "old"), str(tmp_path / "old.json"))
  run_script("run_summary.py", str(tmp_path / "stopped"), str(tmp_path / "stopped.json"),
             "--git=feed123")
  new, old = results(tmp_path / "new.json"), results(tmp_path / "old.json")
  assert new["git"] == "abc1234" and new["valid_curve"] == [
      {"step": 2, "epoch": 1, "ndcg@10": 0.1, "hr@10": 0.2}]
  assert old["git"] == "unknown (made before revisions were recorded)"
  assert new["summary_git"]
  stopped = results(tmp_path / "stopped.json")
  assert stopped["git"] == "feed123" and stopped["final"] is None
