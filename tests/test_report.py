"""seqrec_jax.report: PNG curves and report.md from runs' metrics.jsonl / final.json."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqrec_jax import report

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root: Path, name: str, scale: float, final: bool = True, git: str = "") -> Path:
  d = root / name
  d.mkdir(parents=True)
  records = []
  for step in (10, 20, 30, 40):
    records.append({"kind": "train", "step": step, "loss": 3.0 / step * scale,
                    "grad_norm": 1.0, "steps_per_s": 10.0 + step, "targets_per_s": 2560.0,
                    "step_time_s": 0.1, "time": step / 10})
    if step % 20 == 0:
      records.append({"kind": "valid", "step": step, "epoch": step // 20,
                      "ndcg@10": 0.05 * scale * step / 20, "hr@10": 0.1 * scale * step / 20,
                      "excl/ndcg@10": 0.06 * scale * step / 20,
                      "excl/hr@10": 0.12 * scale * step / 20, "users": 100})
  records.append({"kind": "test", "step": 40, "ndcg@10": 0.0912 * scale, "hr@10": 0.18,
                  "excl/ndcg@10": 0.1034, "excl/hr@10": 0.2})
  with open(d / "metrics.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
    f.write('{"kind": "train", "st')  # a write in progress: skipped
  (d / "config.json").write_text(json.dumps({"eval": {"select_metric": "ndcg@10",
                                                      "exclude_seen": False}}))
  if final:
    summary = {"best_step": 40, "best_epoch": 2,
               "valid": {"ndcg@10": 0.1357, "hr@10": 0.2468, "excl/ndcg@10": 0.1598,
                         "excl/hr@10": 0.2777},
               "test": {"ndcg@10": 0.1512, "hr@10": 0.2701, "excl/ndcg@10": 0.1623,
                        "excl/hr@10": 0.2894},
               "train_seconds": 123.45, "num_items": 50, "num_users": 100}
    if git:
      summary["git"] = git
    (d / "final.json").write_text(json.dumps(summary))
  return d


def test_two_runs_give_pngs_and_a_table_with_the_numbers(tmp_path):
  pytest.importorskip("matplotlib")
  a = make_run(tmp_path, "sasrec", 1.0, git="8f29e96")
  b = make_run(tmp_path, "bert4rec", 2.0, final=False)
  runs = [report.load_run(str(a)), report.load_run(str(b))]
  assert len(runs[0]["records"]) == 4 + 2 + 1  # the partial last line is not a record
  out = tmp_path / "out"
  path = report.write_report(runs, str(out))
  assert path == str(out / "report.md")

  pngs = sorted(p.name for p in out.glob("*.png"))
  assert pngs == ["loss.png", "throughput.png", "valid.png"]
  for name in pngs:
    data = (out / name).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, name

  md = Path(path).read_text()
  for name in pngs:
    assert f"]({name})" in md
  header = next(line for line in md.splitlines() if line.startswith("| |"))
  assert header == "| | sasrec | bert4rec |"
  rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines()
          if line.startswith("| ")}
  # run a: from final.json
  for row, value in [("valid ndcg@10", "0.1357"), ("valid hr@10", "0.2468"),
                     ("valid excl/ndcg@10", "0.1598"), ("valid excl/hr@10", "0.2777"),
                     ("test ndcg@10", "0.1512"), ("test hr@10", "0.2701"),
                     ("test excl/ndcg@10", "0.1623"), ("test excl/hr@10", "0.2894"),
                     ("train_seconds", "123.5"), ("git", "8f29e96"), ("best step", "40")]:
    assert f"| {row} | {value} |" in rows[row], row
  # run b: no final.json, so from metrics.jsonl: best valid at step 40 (ndcg 0.2), its test
  assert rows["status"] == "| status | finished | no final.json |"
  assert rows["best step"].endswith("| 40 | 40 |")
  assert rows["valid ndcg@10"].endswith("| 0.2000 |")
  assert rows["valid excl/hr@10"].endswith("| 0.4800 |")
  assert rows["test ndcg@10"].endswith("| 0.1824 |")
  assert rows["train_seconds"].endswith("| 4.0 |")
  assert rows["git"].endswith("| - |")


def test_missing_metrics_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope" / "metrics.jsonl")):
    report.load_run(str(tmp_path / "nope"))


def test_bad_line_is_named(tmp_path):
  d = make_run(tmp_path, "r", 1.0)
  lines = (d / "metrics.jsonl").read_text().splitlines()
  lines[2] = "not json"
  (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=rf"metrics.jsonl:3: not a JSON record"):
    report.load_run(str(d))


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
  run = report.load_run(str(make_run(tmp_path, "r", 1.0)))
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
  with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
    report.write_report([run], str(tmp_path / "out"))


def test_cli_writes_to_default_out_and_names_a_missing_run(tmp_path):
  pytest.importorskip("matplotlib")
  a = make_run(tmp_path, "a", 1.0)
  b = make_run(tmp_path, "b", 2.0)
  cmd = [sys.executable, "-m", "seqrec_jax.report", f"--workdir={a}", f"--compare={b}"]
  done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  assert str(a / "report" / "report.md") in done.stdout
  assert (a / "report" / "valid.png").stat().st_size > 0

  bad = subprocess.run([*cmd[:-1], f"--compare={b},{tmp_path / 'missing'}"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0
  assert str(tmp_path / "missing" / "metrics.jsonl") in bad.stderr
