"""benchmarks/quality_table.py: engine runs of the presets; a reused final.json keeps
the revision it was made with."""

import json

import pytest

from benchutil import results, run_script

UNKNOWN = "unknown (made before revisions were recorded)"


@pytest.mark.slow
def test_quality_table_smoke_and_reuse(tmp_path):
  args = ["--datasets=synthetic", "--models=sasrec", "--variant=smoke", "--tag=qt",
          f"--workdir_root={tmp_path / 'runs'}", f"--out={tmp_path}",
          "--config.train.num_epochs=1", "--config.model.num_blocks=1"]
  run_script("quality_table.py", *args)
  data = results(tmp_path / "qt.json")
  row, = data["rows"]
  assert not row["reused"] and row["git"] and row["git"] != UNKNOWN
  assert data["overrides"] == {"train.num_epochs": 1, "model.num_blocks": 1}
  run_dir = tmp_path / "runs" / "qt" / "sasrec_synthetic"
  saved = json.loads((run_dir / "config.json").read_text())
  assert saved["model"]["num_blocks"] == 1 and saved["model"]["name"] == "sasrec"
  assert "| synthetic | sasrec |" in (tmp_path / "qt.md").read_text()
  # standard errors from the per-user test ranks (their mean is the engine's figure), and
  # the exact config that ran, frozen beside the results
  for key in ("ndcg@10", "excl/ndcg@10", "hr@10", "excl/hr@10"):
    assert row["test_se"][key]["mean"] == pytest.approx(row["test"].get(key, row["test_se"][
        key]["mean"]), abs=1e-6) and row["test_se"][key]["se"] > 0
  final0 = json.loads((run_dir / "final.json").read_text())
  assert row["test_se"]["excl/ndcg@10"]["mean"] == pytest.approx(
      final0["test"]["excl/ndcg@10"], abs=1e-6)
  assert json.loads((tmp_path / "qt_configs" / "sasrec_synthetic.json").read_text()) == saved

  final = json.loads((run_dir / "final.json").read_text())
  for git, expected in (("0123abc", "0123abc"), (None, UNKNOWN)):
    if git is None:
      final.pop("git")
    else:
      final["git"] = git
    (run_dir / "final.json").write_text(json.dumps(final))
    run_script("quality_table.py", *args)
    row, = results(tmp_path / "qt.json")["rows"]
    assert row["reused"] and row["git"] == expected
    assert row["test"]["ndcg@10"] == final["test"]["ndcg@10"]
