"""Serving: the HTTP JSON service (`app.create_app`) and its micro-batcher.

Needs the `serve` extra (`pip install -e '.[serve]'`: FastAPI, uvicorn, httpx for the
tests). `python -m seqrec_jax.serve` runs it.
"""
