"""Test setup: 8 fake CPU devices (set before JAX starts), parsed absl flags."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the session, shared with the subprocesses tests
# start: many tests compile the same smoke model (about 15% off tests/train/test_loop.py
# on 2 cores). A fresh private folder (mkdtemp, mode 0700): JAX's cache must be trusted.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile  # noqa: E402
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="seqrec_jax_cc_")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
  if not SHARED_DATA.is_dir():
    pytest.skip(f"{SHARED_DATA} not present")
  return SHARED_DATA


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory) -> str:
  """One trained smoke run (configs/default.py:smoke) per test session, shared by the
  inference and serving tests."""
  from seqrec_jax import presets  # pylint: disable=import-outside-toplevel
  from seqrec_jax.train import loop  # pylint: disable=import-outside-toplevel
  path = tmp_path_factory.getbasetemp() / "smoke_run"
  if not (path / "final.json").exists():
    loop.train_and_evaluate(presets.default("smoke"), str(path))
  return str(path)
