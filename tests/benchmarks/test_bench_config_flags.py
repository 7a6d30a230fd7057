"""The benchmarks take configs the way `python -m seqrec_jax.train` does: ml_collections'
config flags, so an unknown `--config.a.b` key is rejected by name before anything runs."""

import pytest

from benchutil import SMOKE, run_script


def assert_rejected(out, key: str, suggestion: str) -> None:
  """Exit status 2 and one line naming the key and the closest one (as the train CLI)."""
  assert out.returncode == 2, out.stderr[-3000:]
  assert f"config.{key};" in out.stderr and f"config.{suggestion}?" in out.stderr
  assert "Traceback" not in out.stderr


@pytest.mark.parametrize("script,extra", [
    ("quality_table.py", ["--datasets=synthetic", "--models=sasrec"]),  # overrides of presets
    ("multistep.py", ["--dataset=synthetic"]),
    ("time_to_quality.py", [SMOKE]),  # --config=file plus overrides
    ("length_grouping.py", [SMOKE]),
    ("throughput.py", [SMOKE]),
    ("compare_recbole.py", [SMOKE]),
    ("time_to_quality.py", []),  # the default config file
])
def test_unknown_override_is_rejected_by_name(tmp_path, script, extra):
  out = run_script(script, *extra, "--config.model.num_block=3", f"--out={tmp_path}",
                   ok=False, timeout=300)
  assert_rejected(out, "model.num_block", "model.num_blocks")
  assert not list(tmp_path.iterdir())  # no results file: nothing ran


def test_gan_compare_rejects_unknown_keys_shared_and_per_dataset(tmp_path):
  for flag in ("--config.gan.epoch=2", "--toys.gan.epoch=2"):
    out = run_script("gan_compare.py", "--datasets=synthetic", flag, f"--out={tmp_path}",
                     f"--workdir={tmp_path / 'runs'}", ok=False, timeout=300)
    assert_rejected(out, "gan.epoch", "gan.epochs")
    assert flag.split("=")[0] in out.stderr or flag.startswith("--config.")
  assert not list(tmp_path.iterdir())


def test_override_values_are_typed_by_the_config(tmp_path):
  out = run_script("quality_table.py", "--datasets=synthetic", "--config.train.num_epochs=two",
                   f"--out={tmp_path}", ok=False, timeout=300)
  assert out.returncode != 0
  assert "config.train.num_epochs" in out.stderr
