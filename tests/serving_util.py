"""`Server`: `python -m seqrec_jax.serve` in a subprocess on 127.0.0.1 (any free port),
for the tests that talk to the service with a real HTTP client."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Server:
  """`python -m seqrec_jax.serve` on 127.0.0.1, any free port."""

  def __init__(self, *flags):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "seqrec_jax.serve", "--host=127.0.0.1", "--port=0",
         "--warmup=false", "--max_batch=64", *flags],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    line = ""
    while time.time() < deadline:
      line = self.proc.stdout.readline()
      if line.startswith("listening on "):
        break
      if self.proc.poll() is not None:
        raise RuntimeError(f"server exited: {self.proc.stderr.read()}")
    else:
      self.kill()
      raise RuntimeError("server did not start")
    self.url = line.split()[2]

  def kill(self, sig=signal.SIGKILL):
    if self.proc.poll() is None:
      self.proc.send_signal(sig)
      self.proc.wait(30)
