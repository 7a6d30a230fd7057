"""The recommend function as a self-contained artifact: `jax.export` (StableHLO) with a
symbolic batch dimension, the parameters, and the id maps. Runs without this package.

`export_recommender(workdir, out_dir)` writes:

  recommend.jax.bin  `jax.export.Exported.serialize()` of
                     `(params: list of arrays, history [b, L] int32, candidates [b, V]
                     bool) -> (items [b, K] int32, scores [b, K] float32)`, the device
                     function of `infer.recommend.recommend_topk` (b symbolic: any batch)
  params.npz         the parameter leaves p00000, p00001, ... in that list's order
  ids.npz            item_ids [V] (raw id of each dense item, [0] = placeholder),
                     user_ids [U], offsets [U+1] and items [N] (every known user's
                     dense history, CSR), titles [V] ("" where none)
  meta.json          format, shapes, K, the model, its training step, version
  standalone.py      a loader and CLI that import only jax and numpy (STANDALONE below)

A model trained with `model.time_features` takes history tokens [b, L, 1 + F] (item,
then each feature's id); ids.npz then also holds `features` [N, F], the known users'
feature ids, and meta.json names the features. `load_recommender` computes an ad-hoc
history's features from its times (`data.time_features`); the standalone loader serves
known users only for such a model.

`load_recommender(out_dir)` serves the artifact through the same host-side
`infer.recommend.Recommender` (raw ids, exclude-seen, allow/deny lists) as a workdir;
`python -m seqrec_jax.serve --export=DIR` uses it.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

FORMAT = "seqrec_jax.export/1"
FUNCTION_FILE, PARAMS_FILE, IDS_FILE, META_FILE = ("recommend.jax.bin", "params.npz", "ids.npz",
                                                   "meta.json")


def _plain(ids: np.ndarray) -> np.ndarray:
  """Raw ids as an int64 or unicode array (no pickled objects in the npz)."""
  ids = np.asarray(ids)
  if ids.dtype.kind in "iu":
    return ids.astype(np.int64)
  return ids.astype(str)


def export_recommender(workdir: str, out_dir: str, k: int = 100,
                       platforms: tuple[str, ...] | None = None) -> dict:
  """Exports `workdir`'s best recommender to `out_dir` (created); -> meta.json's dict.
  `platforms`: e.g. ("cpu", "cuda") for one artifact that runs on both (default: this
  machine's backend)."""
  from seqrec_jax.infer.recommend import Recommender, recommend_topk  # heavy: lazily
  rec = Recommender.from_workdir(workdir, k_max=k)
  run = rec.run
  data = run.dataset
  k = rec.k_max
  leaves, treedef = jax.tree.flatten(jax.device_get(rec.params))
  leaves = [np.asarray(x) for x in leaves]

  def fn(flat, history, candidates):
    return recommend_topk(run.model, data.num_items, k, jax.tree.unflatten(treedef, flat),
                          history, candidates)

  (b,) = jax.export.symbolic_shape("b")
  vocab = data.num_items + 1
  width = 1 + len(rec.time_features)  # item, then each time feature's id
  history_shape = (b, rec.max_len) if width == 1 else (b, rec.max_len, width)
  specs = ([jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves],
           jax.ShapeDtypeStruct(history_shape, np.int32),
           jax.ShapeDtypeStruct((b, vocab), np.bool_))
  exported = jax.export.export(jax.jit(fn), platforms=platforms)(*specs)
  os.makedirs(out_dir, exist_ok=True)
  _write(os.path.join(out_dir, FUNCTION_FILE), bytes(exported.serialize()))
  np.savez(os.path.join(out_dir, PARAMS_FILE), **{f"p{i:05d}": x for i, x in enumerate(leaves)})
  titles = np.array([rec.describe(i).get("title", "") if i else "" for i in range(vocab)],
                    dtype=str)
  features = ({} if width == 1 else
              {"features": np.asarray(run.split.features, np.int32)})  # [N, F]
  np.savez(os.path.join(out_dir, IDS_FILE), item_ids=_plain(data.item_ids),
           user_ids=_plain(data.user_ids), offsets=data.offsets.astype(np.int64),
           items=data.items.astype(np.int32), titles=titles, **features)
  meta = {"format": FORMAT, "function": FUNCTION_FILE, "k": k, "max_len": rec.max_len,
          "num_items": data.num_items, "vocab": vocab, "num_users": data.num_users,
          "num_params": len(leaves), "platforms": list(exported.platforms),
          "inputs": ["params (list, params.npz order)",
                     "history [b, max_len] int32" if width == 1 else
                     f"history tokens [b, max_len, {width}] int32 (item, then "
                     f"{', '.join(rec.time_features)})", "candidates [b, vocab] bool"],
          "time_features": list(rec.time_features),
          "outputs": ["items [b, k] int32 (0 = none)", "scores [b, k] float32 (-inf = none)"],
          "version": rec.version, **{key: rec.info.get(key) for key in
                                     ("model", "kind", "recommender", "best_step",
                                      "params_sha1", "trained_at_revision", "workdir")},
          "jax_version": jax.__version__, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
  _write(os.path.join(out_dir, META_FILE), json.dumps(meta, indent=2).encode())
  _write(os.path.join(out_dir, "standalone.py"), STANDALONE.encode())
  return meta


def _write(path: str, data: bytes) -> None:
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


class ExportedFunction:
  """The deserialised function with its parameters on the default device:
  `(history [B, L], candidates [B, V]) -> (items [B, K], scores [B, K])`."""

  def __init__(self, path: str):
    with open(os.path.join(path, META_FILE)) as f:
      self.meta = json.load(f)
    if self.meta.get("format") != FORMAT:
      raise ValueError(f"{path}: not a {FORMAT} export (format {self.meta.get('format')!r})")
    with open(os.path.join(path, self.meta["function"]), "rb") as f:
      self.exported = jax.export.deserialize(bytearray(f.read()))
    with np.load(os.path.join(path, PARAMS_FILE)) as z:
      self.params = [jax.device_put(z[f"p{i:05d}"]) for i in range(self.meta["num_params"])]

  def __call__(self, history, candidates):
    return self.exported.call(self.params, history, candidates)


def load_recommender(path: str, max_batch: int = 256):
  """An export as an `infer.recommend.Recommender` (raw ids in and out)."""
  from seqrec_jax.infer.recommend import Recommender  # pylint: disable=import-outside-toplevel
  fn = ExportedFunction(path)
  meta = fn.meta
  with np.load(os.path.join(path, IDS_FILE)) as z:
    ids = {key: z[key] for key in z.files}
  offsets, items = ids["offsets"], ids["items"]
  titles = {}
  for raw, title in zip(ids["item_ids"][1:].tolist(), ids["titles"][1:].tolist()):
    if title:
      titles[raw] = title
  info = {key: meta.get(key) for key in ("model", "kind", "recommender", "best_step",
                                         "params_sha1", "trained_at_revision")}
  info.update(source="export", export=os.path.abspath(path), platforms=meta["platforms"])
  names = tuple(meta.get("time_features", ()))
  features = ids.get("features")
  if names and features is None:
    raise ValueError(f"{path}: {IDS_FILE} lacks the users' time features that meta.json's "
                     f"time_features={list(names)} need")
  return Recommender(fn, num_items=meta["num_items"], max_len=meta["max_len"], k_max=meta["k"],
                     item_ids=ids["item_ids"], user_ids=ids["user_ids"],
                     sequences=lambda u: items[offsets[u]:offsets[u + 1]], titles=titles,
                     info=info, max_batch=max_batch, time_features=names,
                     user_features=None if features is None else
                     (lambda u: features[offsets[u]:offsets[u + 1]]))


# The loader written beside every export: jax and numpy only.
STANDALONE = r'''"""Runs a seqrec_jax export with nothing but jax and numpy.

  python standalone.py [--user=RAW_ID | --history=RAW,RAW,...] [--k=10] [--keep_seen]

prints JSON: the top-k items (raw ids), their scores and titles. As a module:
`model = load(dir)`; `model.topk(history [B, L] int32, candidates [B, V] bool)`;
`model.recommend(history_raw_ids=..., user=..., k=...)`.
"""
import argparse
import json
import os
import sys

import jax
import numpy as np


class Exported:
  def __init__(self, path):
    with open(os.path.join(path, "meta.json")) as f:
      self.meta = json.load(f)
    with open(os.path.join(path, self.meta["function"]), "rb") as f:
      self.fn = jax.export.deserialize(bytearray(f.read()))
    with np.load(os.path.join(path, "params.npz")) as z:
      self.params = [z["p%05d" % i] for i in range(self.meta["num_params"])]
    with np.load(os.path.join(path, "ids.npz")) as z:
      self.ids = {k: z[k] for k in z.files}
    self.dense = {str(raw): i for i, raw in enumerate(self.ids["item_ids"].tolist()) if i}
    self.users = {str(raw): u for u, raw in enumerate(self.ids["user_ids"].tolist())}

  def topk(self, history, candidates):
    items, scores = self.fn.call(self.params, history, candidates)
    return np.asarray(items), np.asarray(scores)

  def recommend(self, history_raw_ids=None, user=None, k=10, exclude_seen=True):
    names = self.meta.get("time_features", [])
    off = self.ids["offsets"]
    if user is not None:
      u = self.users[str(user)]
      seq = self.ids["items"][off[u]:off[u + 1]]
    elif names:
      raise ValueError("this model was trained with time features %s: the standalone "
                       "loader serves known users only (seqrec_jax computes an ad-hoc "
                       "history's features from its times)" % names)
    else:
      seq = np.array([self.dense[str(r)] for r in history_raw_ids], np.int32)
    length, vocab = self.meta["max_len"], self.meta["vocab"]
    history = np.zeros((1, length, 1 + len(names)), np.int32)
    window = seq[-length:]
    history[0, :window.size, 0] = window
    if names:
      history[0, :window.size, 1:] = self.ids["features"][off[u]:off[u + 1]][-length:]
    if not names:
      history = history[..., 0]
    cand = np.ones((1, vocab), bool)
    cand[0, 0] = False
    if exclude_seen:
      cand[0, seq] = False
    items, scores = self.topk(history, cand)
    out = []
    for i, s in zip(items[0, :k].tolist(), scores[0, :k].tolist()):
      if i <= 0:
        break
      out.append({"item": self.ids["item_ids"][i].item(), "score": float(s),
                  "title": str(self.ids["titles"][i])})
    return out


def load(path):
  return Exported(path)


if __name__ == "__main__":
  p = argparse.ArgumentParser()
  p.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
  p.add_argument("--user")
  p.add_argument("--history")
  p.add_argument("--k", type=int, default=10)
  p.add_argument("--keep_seen", action="store_true")
  a = p.parse_args()
  model = load(a.dir)
  hist = a.history.split(",") if a.history else None
  recs = model.recommend(history_raw_ids=hist, user=a.user, k=a.k, exclude_seen=not a.keep_seen)
  heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("seqrec_jax", "flax", "optax"))
  print(json.dumps({"recommendations": recs, "imported_project_modules": heavy}))
'''
