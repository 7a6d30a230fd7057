"""The HTTP JSON service (FastAPI on uvicorn): recommend, feedback, health, version.

  POST /recommend  {"user": id} or {"history": [item ids]}, "k", "exclude_seen",
                   "exclude" (deny list), "allow" (allow list)
                   -> {"items": [{"item", "score", "title"?}], "model_version"}
  POST /feedback   {"user", "item", "event", "time"?, "value"?} -> {"seq", ...}, sent
                   only once the event is fsync'd to the log (`seqrec_jax/feedback.py`)
  GET  /health     liveness and readiness
  GET  /version    the served model: name, run kind, best step, parameter digest, source,
                   model version (`versions.py`)
  GET  /stats      request and micro-batch counters, model reloads

With `reload` (the service of a workdir), a background task calls it every
`reload_secs`; when it returns a new `Recommender` (`seqrec_jax.update` published a
version) that one is warmed up beside the serving one and then swapped in: no restart,
no failed request. A version only adds ids, so a request prepared against the old one
runs unchanged on the new.

Errors are JSON {"error": message} (validation: plus "details"): 400 for malformed JSON,
404 for an unknown user, 422 for an invalid request (fields, unknown history items, k
out of range). Recommendation requests are micro-batched (`batcher.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable
from typing import Literal

from absl import logging

from fastapi import FastAPI, Request as HttpRequest
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seqrec_jax.feedback import FeedbackLog
from seqrec_jax.infer.recommend import Recommender, Request, UnknownIdError
from seqrec_jax.serving.batcher import MicroBatcher

Id = int | str
EVENTS = ("view", "click", "add_to_cart", "purchase", "rating", "like", "dislike", "skip")
MAX_LIST = 100_000  # longest history / allow / deny list accepted


class RecommendBody(BaseModel):
  model_config = ConfigDict(extra="forbid")

  user: Id | None = None
  history: list[Id] | None = Field(None, min_length=1, max_length=MAX_LIST)
  k: int = Field(10, ge=1)
  exclude_seen: bool = True
  exclude: list[Id] = Field(default_factory=list, max_length=MAX_LIST)
  allow: list[Id] | None = Field(None, max_length=MAX_LIST)
  # unix seconds of each history item (models trained with model.time_features)
  times: list[float] | None = Field(None, min_length=1, max_length=MAX_LIST)

  @model_validator(mode="after")
  def _one_input(self):
    if (self.user is None) == (self.history is None):
      raise ValueError("give exactly one of 'user' or 'history'")
    return self


class FeedbackBody(BaseModel):
  model_config = ConfigDict(extra="forbid")

  user: Id
  item: Id
  event: Literal[EVENTS]  # type: ignore[valid-type]
  time: float | dt.datetime | None = None  # unix seconds or ISO 8601; default: received
  value: float | None = None  # e.g. the rating
  client_id: str | None = Field(None, max_length=200)  # the client's own id, stored as is

  @field_validator("user", "item")
  @classmethod
  def _non_empty(cls, v):
    if isinstance(v, str) and not v.strip():
      raise ValueError("must not be empty")
    return v

  @field_validator("time", "value")
  @classmethod
  def _finite(cls, v):
    if isinstance(v, float) and not math.isfinite(v):
      raise ValueError("must be a finite number")
    return v


def _error(status: int, message: str, **extra) -> JSONResponse:
  return JSONResponse(status_code=status, content={"error": message, **extra})


def create_app(rec: Recommender, feedback_path: str, *, max_batch: int = 256,
               max_wait_ms: float = 0.0, warmup: bool = True,
               reload: Callable[[], Recommender | None] | None = None,
               reload_secs: float = 2.0) -> FastAPI:
  """The service around `rec` (from a workdir or an export); feedback goes to
  `feedback_path` (JSON lines, fsync'd). `reload() -> Recommender | None` (None: no
  new version) is polled every `reload_secs` for a newer model."""
  served = {"rec": rec}
  cur = lambda: served["rec"]
  batcher = MicroBatcher(lambda prepared: cur().run_prepared(prepared), max_batch=max_batch,
                         max_wait_s=max_wait_ms / 1000)
  state = {"ready": False, "started": time.time(), "reloads": 0, "reload_error": ""}
  buckets = [b for b in (1 << i for i in range(max_batch.bit_length())) if b <= max_batch]

  async def watch_versions():
    loop = asyncio.get_running_loop()
    while True:
      await asyncio.sleep(reload_secs)
      try:
        new = await loop.run_in_executor(None, reload)
        if new is None:
          continue
        if warmup:
          await loop.run_in_executor(None, new.warmup, buckets)
      except Exception as e:  # pylint: disable=broad-except (keep serving the current one)
        state["reload_error"] = f"{type(e).__name__}: {e}"
        logging.warning("model reload failed (still serving %s): %s", cur().version, e)
        continue
      old, served["rec"] = cur(), new
      state["reloads"] += 1
      state["reload_error"] = ""
      logging.info("now serving model version %s (%s), was %s", new.info.get("model_version"),
                   new.version, old.version)

  @contextlib.asynccontextmanager
  async def lifespan(app: FastAPI):
    app.state.feedback = FeedbackLog(feedback_path)
    if warmup:
      await asyncio.get_running_loop().run_in_executor(None, cur().warmup, buckets)
    await batcher.start()
    watcher = asyncio.create_task(watch_versions()) if reload is not None else None
    state["ready"] = True
    try:
      yield
    finally:
      if watcher is not None:
        watcher.cancel()
      await batcher.stop()
      app.state.feedback.close()

  app = FastAPI(title="seqrec_jax", lifespan=lifespan)

  @app.exception_handler(RequestValidationError)
  async def _invalid(request: HttpRequest, exc: RequestValidationError):
    errors = jsonable_encoder(exc.errors(), custom_encoder={Exception: str})
    if any(e.get("type") == "json_invalid" for e in errors):
      return _error(400, "malformed JSON body", details=errors)
    text = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
                     for e in errors)
    return _error(422, f"invalid request: {text}", details=errors)

  @app.get("/health")
  async def health():
    return {"status": "ok" if state["ready"] else "starting", "ready": state["ready"],
            "uptime_s": time.time() - state["started"],
            "feedback_events": app.state.feedback.count}

  @app.get("/version")
  async def version():
    r = cur()
    return {"version": r.version, **r.info, "num_items": r.num_items,
            "num_users": int(len(r.user_ids)), "max_len": r.max_len, "k_max": r.k_max}

  @app.get("/stats")
  async def stats():
    return {"recommend": batcher.stats.as_dict(), "feedback_events": app.state.feedback.count,
            "model_reloads": state["reloads"], "reload_error": state["reload_error"]}

  @app.post("/recommend")
  async def recommend(body: RecommendBody):
    req = Request(user=body.user, history=body.history, k=body.k,
                  exclude_seen=body.exclude_seen, exclude=body.exclude, allow=body.allow,
                  times=body.times)
    try:
      r = cur()
      prepared = r.prepare(req)
    except UnknownIdError as e:
      return _error(404 if e.kind == "user" else 422, str(e), unknown=e.ids)
    except ValueError as e:
      return _error(422, str(e))
    items = await batcher.submit(prepared)
    return {"items": items, "model_version": r.version}

  @app.post("/feedback")
  async def feedback(body: FeedbackBody):
    when = body.time
    if isinstance(when, dt.datetime):
      when = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()
    if when is None:
      when = time.time()
    event = {"user": body.user, "item": body.item, "event": body.event, "time": when}
    if body.value is not None:
      event["value"] = body.value
    if body.client_id is not None:
      event["client_id"] = body.client_id
    record = await asyncio.wrap_future(app.state.feedback.submit(event))
    r = cur()
    known_user = r.users.get(body.user) is not None
    known_item = r.items.get(body.item) is not None
    return {"seq": record["seq"], "received": record["received"], "durable": True,
            "known_user": known_user, "known_item": known_item}

  return app
