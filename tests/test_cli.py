"""The entry points reject bad input with messages that name the key / file / line."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_train(tmp_path, *flags):
  cmd = [sys.executable, "-m", "seqrec_jax.train", "--config=configs/default.py:smoke",
         f"--workdir={tmp_path / 'run'}", *flags]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_unknown_config_key_is_rejected_by_name(tmp_path):
  out = run_train(tmp_path, "--config.model.num_block=3")
  assert out.returncode != 0
  assert "num_block" in out.stderr
  assert "num_blocks" in out.stderr  # the suggestion
  assert not (tmp_path / "run").exists()  # nothing was started


def test_invalid_config_value_is_rejected_by_name(tmp_path):
  out = run_train(tmp_path, "--config.loss.name=softmax")
  assert out.returncode != 0
  assert "config.loss.name='softmax'" in out.stderr


@pytest.fixture
def bad_ratings(tmp_path):
  lines = [f"{u}::{i}::4::{978300000 + 10 * i}" for u in range(1, 6) for i in range(1, 8)]
  lines.insert(12, "3::this is not a rating line")
  path = tmp_path / "ratings.dat"
  path.write_text("\n".join(lines) + "\n")
  return path


def test_malformed_ratings_line_stops_naming_file_and_line(tmp_path, bad_ratings):
  out = run_train(tmp_path, "--config.data.format=movielens", f"--config.data.path={bad_ratings}")
  assert out.returncode != 0
  assert f"{bad_ratings}:13" in out.stderr


@pytest.mark.reliability  # a whole CLI training run: with the hostile-input suite
def test_malformed_line_skipped_and_counted_with_skip_option(tmp_path, bad_ratings):
  out = run_train(tmp_path, "--config.data.format=movielens", f"--config.data.path={bad_ratings}",
                  "--config.data.on_error=skip", "--config.train.num_epochs=1",
                  "--config.train.batch_size=8", "--config.eval.batch_size=8")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "malformed: 1" in out.stdout
