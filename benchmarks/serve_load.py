"""Load test of `python -m seqrec_jax.serve` on 127.0.0.1 (bounded in count and time),
the exported function's latency, and feedback durability under SIGKILL.

  python benchmarks/serve_load.py --workdir=RUN [--seconds=15 --levels=1,8,64
      --out=benchmarks/results/serve_smoke.json]

1. Serving: the server runs as its own process; for each concurrency level N, N
   asyncio clients (httpx, keep-alive) each send single-user POST /recommend (k=10,
   random known users) back to back for `--seconds` (at most `--max_requests` in all);
   requests/s and p50/p99 latency, plus the server's micro-batch counters.
2. The export (`infer/export.py`), in this process: batch-1 and batch-256 latency of the
   deserialised function (p50/p99 of repeated calls after a warm-up).
3. Durability: 8 client threads POST /feedback until `--kill_after` acknowledged events,
   the server is SIGKILLed mid-load and restarted; every acknowledged event's client id
   must be in the log (lost = acknowledged - found).

The clients share the machine with the server (2 cores here): the figures are a lower
bound on what the server alone would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def start_server(*flags) -> tuple[subprocess.Popen, str]:
  env = {**os.environ}
  env.pop("XLA_FLAGS", None)
  proc = subprocess.Popen([sys.executable, "-m", "seqrec_jax.serve", "--host=127.0.0.1",
                           "--port=0", *flags], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          text=True)
  deadline = time.time() + 600
  while time.time() < deadline:
    line = proc.stdout.readline()
    if line.startswith("listening on "):
      return proc, line.split()[2]
    if proc.poll() is not None:
      raise RuntimeError("server exited before listening")
  proc.kill()
  raise RuntimeError("server did not start in time")


def stop(proc, sig=signal.SIGTERM):
  if proc.poll() is None:
    proc.send_signal(sig)
    proc.wait(60)


async def load_level(url: str, users: list, clients: int, seconds: float, cap: int) -> dict:
  import httpx  # pylint: disable=import-outside-toplevel
  latencies: list[float] = []
  errors = 0
  sent = 0
  limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
  async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
    await asyncio.gather(*[c.get("/health") for _ in range(clients)])  # open connections
    before = (await c.get("/stats")).json()["recommend"]
    end = time.perf_counter() + seconds
    rng = random.Random(clients)

    async def worker():
      nonlocal errors, sent
      while time.perf_counter() < end and sent < cap:
        sent += 1
        body = {"user": rng.choice(users), "k": 10}
        t0 = time.perf_counter()
        r = await c.post("/recommend", json=body)
        latencies.append(time.perf_counter() - t0)
        errors += r.status_code != 200

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(clients)])
    wall = time.perf_counter() - t0
    after = (await c.get("/stats")).json()["recommend"]
  lat = np.array(latencies) * 1000
  batches = after["batches"] - before["batches"]
  done = after["requests"] - before["requests"]
  return {"clients": clients, "requests": len(latencies), "errors": errors, "seconds": wall,
          "requests_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(lat, 50)),
          "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()),
          "mean_batch": done / batches if batches else 0.0}


def export_latency(export_dir: str, repeats: int) -> dict:
  from seqrec_jax.infer.export import ExportedFunction  # pylint: disable=import-outside-toplevel
  fn = ExportedFunction(export_dir)
  meta = fn.meta
  rng = np.random.default_rng(0)
  out = {"platforms": meta["platforms"]}
  for batch in (1, 256):
    history = rng.integers(1, meta["num_items"] + 1, (batch, meta["max_len"])).astype(np.int32)
    cand = np.ones((batch, meta["vocab"]), bool)
    cand[:, 0] = False
    for _ in range(3):  # compile and warm up this shape
      [np.asarray(x) for x in fn(history, cand)]
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      [np.asarray(x) for x in fn(history, cand)]
      times.append((time.perf_counter() - t0) * 1000)
    out[f"batch_{batch}"] = {"p50_ms": float(np.percentile(times, 50)),
                             "p99_ms": float(np.percentile(times, 99)), "repeats": repeats,
                             "users_per_s": batch / (np.percentile(times, 50) / 1000)}
  return out


def kill_test(flags: list, log: str, kill_after: int, threads: int = 8) -> dict:
  import httpx  # pylint: disable=import-outside-toplevel
  proc, url = start_server(*flags, f"--feedback_path={log}")
  acked: list[str] = []
  lock, stop_flag = threading.Lock(), threading.Event()

  def client(worker):
    with httpx.Client(base_url=url, timeout=10) as c:
      for n in range(1_000_000):
        if stop_flag.is_set():
          return
        cid = f"{worker}-{n}"
        try:
          r = c.post("/feedback", json={"user": worker, "item": n % 50 + 1, "event": "click",
                                        "client_id": cid})
        except httpx.HTTPError:
          return
        if r.status_code == 200:
          with lock:
            acked.append(cid)

  workers = [threading.Thread(target=client, args=(w,)) for w in range(threads)]
  t0 = time.time()
  for t in workers:
    t.start()
  while len(acked) < kill_after and time.time() - t0 < 120:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait(60)
  killed_after_s = time.time() - t0
  acked_at_kill = len(acked)
  stop_flag.set()
  for t in workers:
    t.join(30)
  acked_total = len(acked)  # includes answers that arrived just before the kill landed
  proc2, url2 = start_server(*flags, f"--feedback_path={log}")
  try:
    from seqrec_jax.feedback import read_events  # pylint: disable=import-outside-toplevel
    stored = [e.get("client_id") for e in read_events(log)]
    found = set(acked) & set(stored)
    count = httpx.get(url2 + "/health", timeout=60).json()["feedback_events"]
  finally:
    stop(proc2)
  return {"threads": threads, "killed_after_s": killed_after_s, "acknowledged": acked_total,
          "acknowledged_at_kill_signal": acked_at_kill, "acknowledged_found_after_restart":
          len(found), "lost": acked_total - len(found), "stored_events": len(stored),
          "stored_not_acknowledged": len(set(stored) - set(acked)),
          "restarted_server_count": count,
          "acked_events_per_s": acked_total / killed_after_s}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--seconds", type=float, default=15.0)
  p.add_argument("--levels", default="1,8,64")
  p.add_argument("--max_requests", type=int, default=200_000)
  p.add_argument("--max_batch", type=int, default=64)
  p.add_argument("--kill_after", type=int, default=500)
  p.add_argument("--export_repeats", type=int, default=50)
  p.add_argument("--out", default=os.path.join(REPO, "benchmarks/results/serve_smoke.json"))
  a = p.parse_args()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax  # pylint: disable=import-outside-toplevel

  from seqrec_jax.infer.export import export_recommender  # pylint: disable=import-outside-toplevel
  from seqrec_jax.infer.recommend import Recommender  # pylint: disable=import-outside-toplevel
  from seqrec_jax.train.engine import git_revision  # pylint: disable=import-outside-toplevel

  tmp = tempfile.mkdtemp(prefix="serve_load_")
  rec = Recommender.from_workdir(a.workdir)
  users = [u.item() if hasattr(u, "item") else u for u in rec.user_ids]
  result = {"git": git_revision(), "workdir": os.path.abspath(a.workdir), "model": rec.version,
            "num_items": rec.num_items, "num_users": len(users), "max_len": rec.max_len,
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "jax": jax.__version__,
                        "backend": jax.default_backend(),
                        "devices": [str(d) for d in jax.devices()]},
            "settings": {"seconds_per_level": a.seconds, "max_batch": a.max_batch,
                         "batch_wait_ms": 0, "k": 10, "request": "single known user"}}
  flags = [f"--workdir={a.workdir}", f"--max_batch={a.max_batch}"]
  proc, url = start_server(*flags, f"--feedback_path={os.path.join(tmp, 'load.jsonl')}")
  try:
    result["load"] = []
    for n in (int(x) for x in a.levels.split(",")):
      level = asyncio.run(load_level(url, users, n, a.seconds, a.max_requests))
      print(json.dumps(level), flush=True)
      result["load"].append(level)
  finally:
    stop(proc)
  export_dir = os.path.join(tmp, "export")
  export_recommender(a.workdir, export_dir, k=100, platforms=(jax.default_backend(),))
  result["export"] = export_latency(export_dir, a.export_repeats)
  print(json.dumps(result["export"]), flush=True)
  result["sigkill"] = kill_test(flags, os.path.join(tmp, "kill.jsonl"), a.kill_after)
  print(json.dumps(result["sigkill"]), flush=True)
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, "w") as f:
    json.dump(result, f, indent=2)
  print("wrote", a.out)


if __name__ == "__main__":
  main()
