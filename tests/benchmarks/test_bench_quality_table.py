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
