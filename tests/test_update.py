"""The loop closed end to end: feedback through the service, `update` extends the ids
and fine-tunes a new version from the base's latest state without touching the base,
and the running service switches to it without a restart (real HTTP over 127.0.0.1)."""

import hashlib
import json
import os
import shutil
import signal
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from seqrec_jax import versions  # noqa: E402
from seqrec_jax.infer.recommend import Recommender  # noqa: E402
from seqrec_jax.train.update import update  # noqa: E402
from serving_util import Server  # noqa: E402


def tree_digest(root: str, skip=("versions", "feedback.jsonl")) -> dict:
  """{path: sha1 of its bytes} of every file under `root` (the base run's state)."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames
                   if os.path.relpath(os.path.join(dirpath, d), root) not in skip]
    for name in filenames:
      rel = os.path.relpath(os.path.join(dirpath, name), root)
      if rel not in skip:
        with open(os.path.join(dirpath, name), "rb") as f:
          out[rel] = hashlib.sha1(f.read()).hexdigest()
  return out


@pytest.fixture
def run_copy(smoke_workdir, tmp_path):
  path = tmp_path / "run"
  shutil.copytree(smoke_workdir, path)
  return str(path)


@pytest.mark.slow  # a server and a fine-tuning run (~25 s + the smoke run)
def test_feedback_update_and_hot_reload(run_copy):
  base = Recommender.from_workdir(run_copy)
  known = [base.user_ids[i].item() for i in range(5)]
  server = Server(f"--workdir={run_copy}", "--reload_secs=0.3")
  try:
    with httpx.Client(base_url=server.url, timeout=60) as c:
      assert c.post("/recommend", json={"user": "newcomer", "k": 5}).status_code == 404
      assert c.post("/recommend", json={"history": ["fresh-item"], "k": 5}).status_code == 422
      assert c.get("/version").json()["model_version"] == "0"
      sent = 0
      for u in known + ["newcomer"]:
        for item in (base.raw_item(3), base.raw_item(5), "fresh-item"):
          r = c.post("/feedback", json={"user": u, "item": item, "event": "click"})
          assert r.status_code == 200 and r.json()["durable"]
          sent += 1
      c.post("/feedback", json={"user": "newcomer", "item": base.raw_item(9), "event": "skip"})
      before = tree_digest(run_copy)

      out = update(run_copy, os.path.join(run_copy, "feedback.jsonl"), epochs=1)
      assert out["version"] == "0001" and versions.latest_name(run_copy) == "0001"
      rep = out["events"]
      assert rep["events"] == sent + 1 and rep["not_positive_event"] == 1
      assert rep["new_users"] == 1 and rep["new_items"] == 1
      assert tree_digest(run_copy) == before  # the base version is untouched
      new = Recommender.from_workdir(run_copy)
      assert new.num_items == base.num_items + 1 and len(new.user_ids) == len(base.user_ids) + 1
      assert new.items.get("fresh-item") == base.num_items + 1  # old ids keep their index
      assert all(new.items.get(base.raw_item(i)) == i for i in range(1, base.num_items + 1))
      assert new.sequences(new.users.get("newcomer")).tolist() == [
          3, 5, base.num_items + 1]

      deadline = time.time() + 120  # the service notices the published version
      while c.get("/version").json()["model_version"] != "0001":
        assert time.time() < deadline, "the service did not switch to version 0001"
        time.sleep(0.3)
      assert c.get("/stats").json()["model_reloads"] == 1
      r = c.post("/recommend", json={"user": "newcomer", "k": 5})
      assert r.status_code == 200 and r.json()["model_version"] == new.version
      got = [e["item"] for e in r.json()["items"]]
      assert got == [e["item"] for e in new.recommend(user="newcomer", k=5)]
      assert "fresh-item" not in got  # seen by the newcomer: excluded
      r = c.post("/recommend", json={"history": ["fresh-item"], "k": 5})
      assert r.status_code == 200
  finally:
    server.kill(signal.SIGTERM)


@pytest.mark.reliability  # four fine-tuning runs (~75 s on 2 cores): the reliability suite
def test_interrupted_update_resumes_updates_chain_and_bad_events_name_the_line(run_copy,
                                                                             tmp_path):
  events = tmp_path / "events.csv"
  events.write_text("user,item,time\n1,2,2000000000\n1,3,2000000001\nnew,2,2000000002\n")
  first = update(run_copy, str(events), epochs=2, overrides={"train.max_steps_this_run": 2})
  assert "interrupted_at_step" in first["report"]
  assert versions.latest_name(run_copy) == ""  # not published
  second = update(run_copy, str(events), epochs=2)  # the same command: resumes it
  assert second["version"] == first["version"] == "0001"
  assert second["report"]["resumed_from"] == 2
  assert versions.latest_name(run_copy) == "0001" and versions.names(run_copy) == ["0001"]
  with open(os.path.join(run_copy, "versions", "0001", "update.json")) as f:
    assert json.load(f)["events"]["new_users"] == 1

  events2 = tmp_path / "e2.jsonl"  # the next update starts from version 0001
  events2.write_text('{"user": "new", "item": "x", "time": 2000000100}\n')
  out = update(run_copy, str(events2), epochs=1)
  assert out["version"] == "0002" and out["base"].endswith(os.path.join("versions", "0001"))
  assert out["events"]["new_users"] == 0 and out["events"]["new_items"] == 1
  rec = Recommender.from_workdir(run_copy)
  assert rec.info["model_version"] == "0002"
  assert rec.sequences(rec.users.get("new")).tolist()[-1] == rec.items.get("x") == rec.num_items

  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"user": 1, "item": 2}\n{"user": 1}\n')
  with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field 'item'"):
    update(run_copy, str(bad))
  skip_only = tmp_path / "skip.jsonl"
  skip_only.write_text('{"user": 1, "item": 2, "event": "skip"}\n')
  with pytest.raises(ValueError, match="no new interactions"):
    update(run_copy, str(skip_only))
  assert versions.latest_name(run_copy) == "0002"
