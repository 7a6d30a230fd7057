"""Test setup: 8 fake CPU devices (set before JAX starts), parsed absl flags."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
