"""The HTTP service over 127.0.0.1 with a real client: endpoints, 4xx errors,
micro-batching, serving from an export, and no acknowledged feedback lost to SIGKILL."""

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from seqrec_jax.feedback import FeedbackLog, read_events  # noqa: E402
from seqrec_jax.infer.recommend import Recommender  # noqa: E402
from serving_util import Server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def same(got, want):
  """Same items in the same order, scores equal up to float rounding (batch sizes differ)."""
  assert [e["item"] for e in got] == [e["item"] for e in want]
  np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want],
                             rtol=1e-5, atol=1e-6)
  return True



@pytest.fixture(scope="module")
def setup(smoke_workdir, tmp_path_factory):
  workdir = smoke_workdir
  log = tmp_path_factory.mktemp("serve") / "feedback.jsonl"
  # A batch waits up to 50 ms for more requests, so the batching test does not depend
  # on how fast a loaded machine's client opens its connections.
  server = Server(f"--workdir={workdir}", f"--feedback_path={log}", "--batch_wait_ms=50")
  yield server, Recommender.from_workdir(workdir, k_max=100), workdir, log
  server.kill(signal.SIGTERM)


def test_health_version_and_recommend(setup):
  server, rec, _, _ = setup
  with httpx.Client(base_url=server.url, timeout=60) as c:
    assert c.get("/health").json()["ready"] is True
    v = c.get("/version").json()
    assert v["version"] == rec.version and v["model"] == "sasrec" and v["source"] == "workdir"
    u = rec.user_ids[2].item()
    r = c.post("/recommend", json={"user": u, "k": 5})
    assert r.status_code == 200
    assert same(r.json()["items"], rec.recommend(user=u, k=5))
    assert r.json()["model_version"] == rec.version
    body = {"history": [3, 4, 5], "k": 4, "allow": [7, 8, 9, 10, 11], "exclude": [8]}
    assert same(c.post("/recommend", json=body).json()["items"],
                rec.recommend(history=[3, 4, 5], k=4, allow=[7, 8, 9, 10, 11], exclude=[8]))
    r = c.post("/recommend", json={"user": str(u), "k": 3, "exclude_seen": False})
    assert same(r.json()["items"], rec.recommend(user=u, k=3, exclude_seen=False))


@pytest.mark.parametrize("body,status,text", [
    ({"user": "no-such-user"}, 404, "unknown user id"),
    ({"history": [3, "nope"]}, 422, "unknown item id: 'nope'"),
    ({"user": 1, "history": [3]}, 422, "exactly one of 'user' or 'history'"),
    ({}, 422, "exactly one of 'user' or 'history'"),
    ({"user": 1, "k": 0}, 422, "k"),
    ({"user": 1, "k": 10_000}, 422, "k=10000 must be in 1..60"),
    ({"user": 1, "kk": 3}, 422, "kk: Extra inputs are not permitted"),
    ({"history": []}, 422, "history"),
    ({"user": 1, "exclude": "abc"}, 422, "exclude"),
    ({"history": [3, 4], "times": [1, 2]}, 422, "trained without model.time_features"),
    ({"history": [3], "times": ["soon"]}, 422, "times"),
])
def test_recommend_validation(setup, body, status, text):
  server = setup[0]
  r = httpx.post(server.url + "/recommend", json=body, timeout=60)
  assert r.status_code == status, r.text
  assert text in r.json()["error"]


def test_malformed_json_and_bad_feedback(setup):
  server = setup[0]
  r = httpx.post(server.url + "/recommend", content=b"{not json",
                 headers={"content-type": "application/json"}, timeout=60)
  assert r.status_code == 400 and r.json()["error"] == "malformed JSON body"
  for body, text in (({"user": 1, "item": 2, "event": "teleport"}, "event"),
                     ({"user": 1, "event": "click"}, "item: Field required"),
                     ({"user": " ", "item": 2, "event": "click"}, "must not be empty"),
                     ({"user": 1, "item": 2, "event": "click", "time": "yesterday"}, "time")):
    r = httpx.post(server.url + "/feedback", json=body, timeout=60)
    assert r.status_code == 422 and text in r.json()["error"], r.text


def test_concurrent_requests_are_micro_batched(setup):
  server, rec, _, _ = setup
  users = [rec.user_ids[u].item() for u in range(48)]

  async def run():
    async with httpx.AsyncClient(base_url=server.url, timeout=120,
                                 limits=httpx.Limits(max_connections=64)) as c:
      await asyncio.gather(*[c.get("/health") for _ in users])  # open the connections
      before = (await c.get("/stats")).json()["recommend"]
      rs = await asyncio.gather(*[c.post("/recommend", json={"user": u, "k": 5}) for u in users])
      after = (await c.get("/stats")).json()["recommend"]
      return rs, before, after

  rs, before, after = asyncio.run(run())
  assert all(r.status_code == 200 for r in rs)
  for u, r in zip(users, rs):
    assert same(r.json()["items"], rec.recommend(user=u, k=5))
  requests = after["requests"] - before["requests"]
  batches = after["batches"] - before["batches"]
  assert requests == len(users)
  assert batches < requests and after["largest_batch"] > 1  # several requests per call


def test_feedback_is_appended(setup):
  server, _, _, log = setup
  before = len(read_events(str(log)))
  r = httpx.post(server.url + "/feedback", json={"user": 1, "item": 2, "event": "rating",
                                                  "value": 4.5, "time": "2024-01-02T03:04:05Z",
                                                  "client_id": "one"}, timeout=60)
  assert r.status_code == 200 and r.json()["durable"] is True
  events = read_events(str(log))
  assert len(events) == before + 1
  last = events[-1]
  assert last["client_id"] == "one" and last["value"] == 4.5 and last["seq"] == r.json()["seq"]
  assert last["time"] == 1704164645.0 and last["event"] == "rating"


def test_no_acknowledged_feedback_is_lost_to_sigkill(smoke_workdir, tmp_path_factory):
  workdir = smoke_workdir
  log = tmp_path_factory.mktemp("kill") / "feedback.jsonl"
  server = Server(f"--workdir={workdir}", f"--feedback_path={log}")
  acked, lock, stop = [], threading.Lock(), threading.Event()

  def client(worker):
    with httpx.Client(base_url=server.url, timeout=10) as c:
      for n in range(10_000):
        if stop.is_set():
          return
        cid = f"{worker}-{n}"
        try:
          r = c.post("/feedback", json={"user": worker, "item": n % 50 + 1, "event": "click",
                                        "client_id": cid})
        except httpx.HTTPError:
          return  # the server died mid-request: not acknowledged
        if r.status_code == 200:
          with lock:
            acked.append(cid)

  threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
  for t in threads:
    t.start()
  deadline = time.time() + 60
  while len(acked) < 200 and time.time() < deadline:
    time.sleep(0.05)
  server.kill(signal.SIGKILL)  # mid-load
  stop.set()
  for t in threads:
    t.join(30)
  assert len(acked) >= 200
  restarted = Server(f"--workdir={workdir}", f"--feedback_path={log}")
  try:
    stored = {e["client_id"] for e in read_events(str(log))}
    assert set(acked) <= stored  # zero lost
    count = httpx.get(restarted.url + "/health", timeout=60).json()["feedback_events"]
    assert count == len(read_events(str(log))) >= len(acked)
    r = httpx.post(restarted.url + "/feedback", json={"user": 1, "item": 1, "event": "view",
                                                       "client_id": "after"}, timeout=60)
    assert r.json()["seq"] == count  # the log continues where it was
  finally:
    restarted.kill(signal.SIGTERM)


def test_serves_from_an_export(smoke_workdir, tmp_path_factory):
  from seqrec_jax.infer.export import export_recommender  # pylint: disable=import-outside-toplevel
  workdir = smoke_workdir
  out = tmp_path_factory.mktemp("served_export")
  export_recommender(workdir, str(out), k=20, platforms=("cpu",))
  server = Server(f"--export={out}")
  try:
    rec = Recommender.from_workdir(workdir, k_max=20)
    v = httpx.get(server.url + "/version", timeout=60).json()
    assert v["source"] == "export" and v["version"] == rec.version
    u = rec.user_ids[7].item()
    r = httpx.post(server.url + "/recommend", json={"user": u, "k": 6}, timeout=60)
    assert same(r.json()["items"], rec.recommend(user=u, k=6))
    r = httpx.post(server.url + "/feedback", json={"user": u, "item": 3, "event": "click"},
                   timeout=60)
    assert r.status_code == 200 and os.path.exists(out / "feedback.jsonl")
  finally:
    server.kill(signal.SIGTERM)


def test_feedback_log_recovers_a_cut_line_and_group_commits(tmp_path):
  path = tmp_path / "log.jsonl"
  path.write_bytes(b'{"a":1,"seq":0}\n{"a":2,"seq":1}\n{"a":3,"se')  # cut by a crash
  with FeedbackLog(str(path)) as log:
    assert log.count == 2
    futures = [log.submit({"n": i}) for i in range(500)]
    records = [f.result(30) for f in futures]
  assert [r["seq"] for r in records] == list(range(2, 502))
  events = read_events(str(path))
  assert len(events) == 502 and [e["seq"] for e in events] == list(range(502))
  assert json.loads(path.read_text().splitlines()[2])["n"] == 0
  assert np.all(np.diff([e["seq"] for e in events]) == 1)
