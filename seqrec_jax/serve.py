"""`python -m seqrec_jax.serve (--workdir=DIR | --export=DIR) [--port=8000
--host=127.0.0.1 --feedback_path=... --max_batch=256 --batch_wait_ms=0]`.

An HTTP JSON service (FastAPI on uvicorn) for the run's best recommender, or for an
export (`infer/export.py`; then no model code runs, only the exported StableHLO):
POST /recommend, POST /feedback (appended durably to `<workdir>/feedback.jsonl`, or
`<export>/feedback.jsonl`), GET /health, /version, /stats; see `serving/app.py`.
With `--workdir`, a model version that `python -m seqrec_jax.update` publishes is picked
up within `--reload_secs` (loaded and warmed up beside the serving one, then swapped in).
Concurrent recommendation requests are micro-batched into one jitted call. Prints
`listening on http://HOST:PORT` once the model is loaded (`--port=0`: any free port).
"""

from __future__ import annotations

import os
import socket

from absl import app, flags

from seqrec_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_EXPORT = flags.DEFINE_string("export", None, "An exported model directory instead.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to bind (default: loopback only).")
_PORT = flags.DEFINE_integer("port", 8000, "Port (0: any free port).")
_FEEDBACK = flags.DEFINE_string("feedback_path", None,
                                "Feedback log (default: feedback.jsonl in the workdir/export).")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 256, "Most requests in one device call.")
_WAIT_MS = flags.DEFINE_float("batch_wait_ms", 0.0,
                              "After the first request, wait this long for more (0: take "
                              "what is queued).")
_K_MAX = flags.DEFINE_integer("k_max", 100, "Largest k a request may ask for (workdir only).")
_WARMUP = flags.DEFINE_bool("warmup", True, "Compile every batch size before serving.")
_RELOAD_SECS = flags.DEFINE_float("reload_secs", 2.0,
                                  "--workdir: check for a newly published model version this "
                                  "often (0: never)")


def version_watcher(workdir: str, rec, **kw):
  """`() -> Recommender | None`: the newly published version of `workdir`, once."""
  from seqrec_jax import versions  # pylint: disable=import-outside-toplevel
  current = {"name": rec.info.get("model_version", "0")}

  def reload():
    name = versions.latest_name(workdir) or "0"
    if name == current["name"]:
      return None
    new = type(rec).from_workdir(workdir, **kw)
    current["name"] = new.info["model_version"]
    return new

  return reload


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(_WORKDIR.value) == bool(_EXPORT.value):
    raise app.UsageError("give exactly one of --workdir or --export")
  import uvicorn  # pylint: disable=import-outside-toplevel

  from seqrec_jax.serving.app import create_app  # pylint: disable=import-outside-toplevel
  if _EXPORT.value:
    from seqrec_jax.infer.export import load_recommender  # pylint: disable=import-outside-toplevel
    rec = load_recommender(_EXPORT.value, max_batch=_MAX_BATCH.value)
  else:
    from seqrec_jax.infer.recommend import Recommender  # pylint: disable=import-outside-toplevel
    rec = Recommender.from_workdir(_WORKDIR.value, k_max=_K_MAX.value, max_batch=_MAX_BATCH.value)
  reload = None
  if _WORKDIR.value and _RELOAD_SECS.value > 0:
    reload = version_watcher(_WORKDIR.value, rec, k_max=_K_MAX.value, max_batch=_MAX_BATCH.value)
  feedback = _FEEDBACK.value or os.path.join(_WORKDIR.value or _EXPORT.value, "feedback.jsonl")
  api = create_app(rec, feedback, max_batch=_MAX_BATCH.value, max_wait_ms=_WAIT_MS.value,
                   warmup=_WARMUP.value, reload=reload, reload_secs=_RELOAD_SECS.value)
  sock = socket.socket(socket.AF_INET6 if ":" in _HOST.value else socket.AF_INET)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  sock.bind((_HOST.value, _PORT.value))
  host, port = sock.getsockname()[:2]
  config = uvicorn.Config(api, log_level="warning", access_log=False, timeout_keep_alive=30)
  server = uvicorn.Server(config)

  async def announce():  # after the lifespan startup (warm-up) has finished
    import asyncio  # pylint: disable=import-outside-toplevel
    while not server.started:
      await asyncio.sleep(0.05)
    print(f"listening on http://{host}:{port} (model {rec.version}, feedback {feedback})",
          flush=True)

  import asyncio  # pylint: disable=import-outside-toplevel

  async def serve():
    task = asyncio.create_task(announce())
    await server.serve(sockets=[sock])
    task.cancel()

  asyncio.run(serve())


if __name__ == "__main__":
  cli.run(main)
