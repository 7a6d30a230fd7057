"""Top-K recommendation for a batch of histories or known users: jitted, batched, with
exclude-seen and per-request allow and deny lists. Any model of the registry (the
scoring interface `encode` / `item_table`), any finished run kind (`restore`).

Two layers:
  * the device function `recommend_topk(model, num_items, k, params, history [B, L],
    candidates [B, V]) -> (items [B, k], scores [B, k])`: scores every item, keeps
    those with `candidates` True (column 0, padding, and every column past
    `num_items` are never recommended), and returns the best k, best first. Slots left
    without an allowed item have score -inf and item 0. `make_recommend_fn` jits it;
    `infer/export.py` serialises the same function with `jax.export`.
  * `Recommender`: the host side shared by the CLI, the service and the exported model.
    Raw ids in, raw ids (and titles) out: `recommend(user=... | history=..., k,
    exclude_seen, exclude, allow, times)` or `recommend_batch([Request, ...])`. Requests of one
    call go to the device as one batch, padded to a power of two (one compiled shape
    per bucket), windows of the model's `max_len` latest items.

Exclusions are a dense boolean mask per request: one shape per batch bucket, whatever
the lengths of the histories and lists (V bytes a request, less than its scores).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqrec_jax.data.ids import IdMap, item_map, python_value as _py

K_MAX = 100  # the most items one request may ask for (the device function's k)
MAX_BATCH = 256


def recommend_topk(model, num_items: int, k: int, params: Any, history: jax.Array,
                   candidates: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The best k allowed items of each history.

  history: [B, L] int32 right-padded dense ids; candidates: [B, V] bool (V = num_items
  + 1, column i = item i; True = may be recommended) -> (items [B, k] int32, scores
  [B, k] float32), best first; a slot without an allowed item has item 0, score -inf.
  """
  from seqrec_jax.models.interfaces import item_scores  # pylint: disable=import-outside-toplevel
  scores = model.apply({"params": params}, history, method=item_scores).astype(jnp.float32)
  vocab = scores.shape[1]
  col = jnp.arange(vocab)[None, :]
  ok = (col >= 1) & (col <= num_items) & candidates[:, :vocab]
  masked = jnp.where(ok, scores, -jnp.inf)
  top_scores, top_items = jax.lax.top_k(masked, k)
  top_items = jnp.where(jnp.isfinite(top_scores), top_items, 0).astype(jnp.int32)
  return top_items, top_scores


def make_recommend_fn(model, num_items: int, k: int) -> Callable:
  """`recommend_topk` jitted: `(params, history [B, L], candidates [B, V]) -> (items,
  scores)`; `k` is clipped to the catalogue."""
  return jax.jit(functools.partial(recommend_topk, model, num_items, min(k, num_items)))


def params_digest(params: Any) -> str:
  """sha1 over every parameter leaf's bytes (in tree order): the served model's identity."""
  h = hashlib.sha1()
  for leaf in jax.tree.leaves(params):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return h.hexdigest()


def bucket(n: int, lo: int = 1) -> int:
  """The power of two >= n (>= lo): batch sizes compiled once each."""
  return max(lo, 1 << max(n - 1, 0).bit_length())


# ---------------------------------------------------------------------------- ids, titles

class UnknownIdError(KeyError):
  """A raw user or item id that the run's data does not have (the service's 404/422)."""

  def __init__(self, kind: str, ids: Sequence):
    self.kind, self.ids = kind, list(ids)
    shown = ", ".join(repr(i) for i in self.ids[:10]) + (" ..." if len(self.ids) > 10 else "")
    super().__init__(f"unknown {kind} id{'s' if len(self.ids) > 1 else ''}: {shown}")

  def __str__(self) -> str:
    return str(self.args[0])


def read_titles_tsv(path: str) -> dict:
  """Item id -> title from a tab-separated file with a header naming `item_id` and
  `title` (or, without titles, `keywords`): ../shared/data/amazon-text's files. Fields
  are not quoted and contain no tabs, so lines are split on tabs only."""
  titles: dict = {}
  with open(path, encoding="utf-8") as f:
    header = f.readline().rstrip("\n").split("\t")
    if "item_id" not in header:
      raise ValueError(f"{path}: expected a header with an item_id column, got {header}")
    key_col = header.index("item_id")
    text_col = next((header.index(c) for c in ("title", "keywords") if c in header), None)
    if text_col is None:
      raise ValueError(f"{path}: no title or keywords column in {header}")
    for line in f:
      fields = line.rstrip("\n").split("\t")
      if len(fields) <= max(key_col, text_col):
        continue
      key = fields[key_col].strip()
      titles[int(key) if key.lstrip("-").isdigit() else key] = fields[text_col]
  return titles


# Item text for datasets whose interaction files have none: data file -> text file,
# both relative to data.root (../shared/data/amazon-text/README.md).
KNOWN_TEXT = {
    "s3rec/Toys_and_Games.txt": "amazon-text/Toys_and_Games_item_text.tsv",
    "s3rec/Sports_and_Outdoors.txt": "amazon-text/Sports_and_Outdoors_item_text.tsv",
}


def titles_path(cfg) -> str:
  """The run's item-title file: `data.titles_path`, else the known text file of its data
  (Amazon Toys / Sports), else ""."""
  from seqrec_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  path = config_lib.data_path(cfg.data, "titles_path")
  if path:
    return path
  data = str(cfg.data.get("path", "") or "")
  for suffix, text in KNOWN_TEXT.items():
    if data.replace(os.sep, "/").endswith(suffix):
      root = config_lib.data_path(cfg.data, "path")[: -len(suffix)]
      return os.path.join(root, text)
  return ""


def load_titles(path: str) -> dict:
  """Raw item id -> title from `path` (MovieLens movies.dat / u.item / movies.csv, or a
  .tsv with item_id and title columns); {} when there is no such file."""
  if not path or not os.path.exists(path):
    return {}
  if path.lower().endswith(".tsv"):
    return read_titles_tsv(path)
  from seqrec_jax.data.sources import read_item_titles  # pylint: disable=import-outside-toplevel
  return read_item_titles(path, on_error="skip")


# ---------------------------------------------------------------------------- requests

@dataclasses.dataclass
class Request:
  """One recommendation request, in raw ids. Exactly one of `user` / `history`."""

  user: Any = None  # a known user's raw id: their whole history is the input
  history: Sequence | None = None  # an ad-hoc history of raw item ids, oldest first
  k: int = 10
  exclude_seen: bool = True  # never recommend an item of the (whole) history
  exclude: Sequence = ()  # deny list (raw item ids; unknown ones are ignored)
  allow: Sequence | None = None  # allow list: only these (None = the whole catalogue)
  # unix seconds of each `history` item (a model trained with model.time_features needs
  # them; a known user's come from the data)
  times: Sequence | None = None


@dataclasses.dataclass
class Prepared:
  """A request checked and mapped to dense ids (what the device batch is built from)."""

  history: np.ndarray  # [n] dense ids, the whole history
  k: int
  banned: np.ndarray  # dense ids never to recommend
  allowed: np.ndarray | None  # dense ids; None = all
  user_index: int | None = None
  features: np.ndarray | None = None  # [n, F] time-feature ids of the history items


class Recommender:
  """Raw-id recommendations from any device scorer.

  `scorer(history [B, L] int32, candidates [B, V] bool) -> (items [B, K], scores [B, K])`
  is the jitted model (`from_restored`, `from_workdir`) or an exported one
  (`infer.export.load_recommender`). `sequences(u)` gives a known user's dense history.
  With `time_features` (the run's model.time_features) histories go to the scorer as
  tokens [B, L, 1 + F]: a known user's feature ids from `user_features(u)` [n, F], an
  ad-hoc history's from the request's `times`.
  """

  def __init__(self, scorer: Callable, *, num_items: int, max_len: int, k_max: int,
               item_ids: np.ndarray, user_ids: np.ndarray | None = None,
               sequences: Callable[[int], np.ndarray] | None = None,
               titles: dict | None = None, info: dict | None = None,
               max_batch: int = MAX_BATCH, time_features: tuple[str, ...] = (),
               user_features: Callable[[int], np.ndarray] | None = None):
    self.scorer = scorer
    self.num_items, self.max_len = int(num_items), int(max_len)
    self.k_max = int(min(k_max, num_items))
    self.item_ids = item_ids
    self.items = item_map(item_ids)
    self.user_ids = np.asarray([] if user_ids is None else user_ids)
    self.users = IdMap(self.user_ids)
    self.sequences = sequences
    self.titles = titles or {}
    self.info = dict(info or {})
    self.max_batch = max_batch
    self.time_features = tuple(time_features)
    self.user_features = user_features

  # ---- construction ----------------------------------------------------------------------
  @classmethod
  def from_restored(cls, run, *, k_max: int = K_MAX, titles: dict | None = None,
                    max_batch: int = MAX_BATCH) -> "Recommender":
    """From `infer.restore(workdir)`: the best-on-validation recommender of the run."""
    data = run.dataset
    fn = make_recommend_fn(run.model, data.num_items, k_max)
    params = jax.device_get(run.params)  # one device: requests are small batches
    params = jax.device_put(params, jax.devices()[0])
    scorer = lambda h, c: fn(params, h, c)
    if titles is None:
      titles = load_titles(titles_path(run.cfg))
    info = {"source": "workdir", "model": run.cfg.model.name, "kind": run.kind,
            "recommender": ("discriminator" if run.cfg.gan.enabled
                            and run.cfg.gan.recommender == "discriminator" else "model"),
            "best_step": int(run.meta.get("step", -1)), "valid": run.meta.get("valid", {}),
            "params_sha1": params_digest(params)}
    from seqrec_jax.data.time_features import parse  # pylint: disable=import-outside-toplevel
    names = parse(run.cfg.model.get("time_features", ""))
    features = run.split.features
    user_features = None if features is None else (
        lambda u: features[data.offsets[u]:data.offsets[u + 1]])
    if names:
      info["time_features"] = list(names)
    rec = cls(scorer, num_items=data.num_items, max_len=run.cfg.model.max_len, k_max=k_max,
              item_ids=data.item_ids, user_ids=data.user_ids, sequences=data.sequence,
              titles=titles, info=info, max_batch=max_batch, time_features=names,
              user_features=user_features)
    rec.model, rec.params, rec.run = run.model, params, run
    return rec

  @classmethod
  def from_workdir(cls, workdir: str, **kw) -> "Recommender":
    """The run's newest published model version (`versions.latest`: the run itself
    until `seqrec_jax.update` has published one)."""
    # pylint: disable=import-outside-toplevel
    from seqrec_jax import versions
    from seqrec_jax.infer.restore import restore
    name = versions.latest_name(workdir)
    vdir = versions.latest(workdir)
    rec = cls.from_restored(restore(vdir), **kw)
    rec.info["workdir"] = os.path.abspath(workdir)
    rec.info["model_version"] = name or "0"
    rec.info["version_dir"] = os.path.abspath(vdir)
    final = os.path.join(vdir, "final.json")
    if os.path.exists(final):
      with open(final) as f:
        rec.info["trained_at_revision"] = json.load(f).get("git", "")
    return rec

  @property
  def version(self) -> str:
    """"<model>@<best step>:<params digest>": changes whenever the served parameters do."""
    return (f"{self.info.get('model', '?')}@{self.info.get('best_step', -1)}:"
            f"{self.info.get('params_sha1', '')[:12]}")

  # ---- ids -------------------------------------------------------------------------------
  def user_index(self, raw) -> int:
    u = self.users.get(raw)
    if u is None or self.sequences is None:
      raise UnknownIdError("user", [raw])
    return u

  def dense_items(self, raw_ids: Iterable, strict: bool) -> np.ndarray:
    """Raw item ids -> dense ids; unknown ids raise (strict) or are dropped."""
    out, unknown = [], []
    for raw in raw_ids:
      i = self.items.get(raw)
      if i is None or not 1 <= i <= self.num_items:
        unknown.append(raw)
      else:
        out.append(i)
    if unknown and strict:
      raise UnknownIdError("item", unknown)
    return np.asarray(out, np.int32)

  def raw_item(self, dense: int):
    return _py(self.item_ids[dense])

  def describe(self, dense: int) -> dict:
    raw = self.raw_item(dense)
    entry = {"item": raw}
    if self.titles:
      entry["title"] = self.titles.get(raw, self.titles.get(str(raw), ""))
    return entry

  # ---- requests --------------------------------------------------------------------------
  def prepare(self, req: Request) -> Prepared:
    """Checks one request and maps it to dense ids (UnknownIdError / ValueError)."""
    if (req.user is None) == (req.history is None):
      raise ValueError("give exactly one of user or history")
    if not 1 <= int(req.k) <= self.k_max:
      raise ValueError(f"k={req.k} must be in 1..{self.k_max}")
    u = None
    if req.user is not None:
      u = self.user_index(req.user)
      history = np.asarray(self.sequences(u), np.int32)
    else:
      history = self.dense_items(req.history, strict=True)
    features = self._features(req, u, history.size)
    banned = self.dense_items(req.exclude, strict=False)
    if req.exclude_seen:
      banned = np.concatenate([banned, history])
    allowed = None if req.allow is None else self.dense_items(req.allow, strict=False)
    return Prepared(history=history, k=int(req.k), banned=banned, allowed=allowed, user_index=u,
                    features=features)

  def _features(self, req: Request, u: int | None, n: int) -> np.ndarray | None:
    """[n, F] time-feature ids of the request's history, or None for a model without."""
    if not self.time_features:
      if req.times is not None:
        raise ValueError("times: this model was trained without model.time_features; "
                         "leave times out")
      return None
    if u is not None:
      if req.times is not None:
        raise ValueError("times: a known user's times come from the data; give times "
                         "only with a history")
      if self.user_features is None:
        raise ValueError("this recommender has no time features for known users")
      return np.asarray(self.user_features(u), np.int32)
    names = ",".join(self.time_features)
    if req.times is None:
      raise ValueError(f"times: this model was trained with model.time_features={names!r}; "
                       "give the unix time of each history item (times=[...], oldest first)")
    if len(req.times) != n:
      raise ValueError(f"times: {len(req.times)} times for a history of {n} items")
    from seqrec_jax.data.time_features import history_features  # pylint: disable=import-outside-toplevel
    return history_features(self.time_features, req.times)

  def arrays(self, prepared: Sequence[Prepared], batch: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Device inputs of a batch: (history [B, L] int32, or tokens [B, L, 1 + F] with time
    features; candidates [B, V] bool), padded to `batch` rows (default: the power-of-two
    bucket)."""
    batch = batch or bucket(len(prepared))
    width = 1 + len(self.time_features)
    history = np.zeros((batch, self.max_len, width), np.int32)  # items, then features
    cand = np.zeros((batch, self.num_items + 1), np.bool_)
    for row, p in enumerate(prepared):
      window = p.history[-self.max_len:]
      history[row, :window.size, 0] = window
      if width > 1:
        if p.features is None:
          raise ValueError("this model needs each history item's time features")
        history[row, :window.size, 1:] = p.features[-self.max_len:]
      if p.allowed is None:
        cand[row, 1:] = True
      else:
        cand[row, p.allowed] = True
      cand[row, p.banned] = False
    cand[:, 0] = False
    return (history[..., 0] if width == 1 else history), cand

  def run_prepared(self, prepared: Sequence[Prepared]) -> list[list[dict]]:
    """One device call per `max_batch` requests -> per request its list of
    {"item", "score"[, "title"]}, best first (fewer than k when the lists leave fewer)."""
    out: list[list[dict]] = []
    for start in range(0, len(prepared), self.max_batch):
      chunk = prepared[start:start + self.max_batch]
      history, cand = self.arrays(chunk)
      items, scores = self.scorer(history, cand)
      items, scores = np.asarray(items), np.asarray(scores)
      for row, p in enumerate(chunk):
        entries = []
        for item, score in zip(items[row, :p.k].tolist(), scores[row, :p.k].tolist()):
          if item <= 0 or not np.isfinite(score):
            break
          entries.append({**self.describe(item), "score": float(score)})
        out.append(entries)
    return out

  def recommend_batch(self, requests: Sequence[Request]) -> list[list[dict]]:
    return self.run_prepared([self.prepare(r) for r in requests])

  def recommend(self, user=None, history=None, k: int = 10, exclude_seen: bool = True,
                exclude: Sequence = (), allow: Sequence | None = None,
                times: Sequence | None = None) -> list[dict]:
    """Top-k for one known user (raw id) or one ad-hoc history (raw item ids; with
    `times`, unix seconds per item, for a model with time features)."""
    return self.recommend_batch([Request(user=user, history=history, k=k,
                                         exclude_seen=exclude_seen, exclude=exclude,
                                         allow=allow, times=times)])[0]

  def dense_topk(self, histories: Sequence[np.ndarray], k: int, exclude_seen: bool = True
                 ) -> np.ndarray:
    """Dense-id API: [N, k] item ids (0 = none left) for dense histories."""
    if self.time_features:
      raise ValueError("dense_topk takes item ids only; this model needs time features "
                       "(use recommend_batch with known users or times)")
    prepared = [Prepared(history=np.asarray(h, np.int32), k=k,
                         banned=np.asarray(h, np.int32) if exclude_seen else np.zeros(0, np.int32),
                         allowed=None) for h in histories]
    out = np.zeros((len(prepared), k), np.int32)
    for start in range(0, len(prepared), self.max_batch):
      chunk = prepared[start:start + self.max_batch]
      items, _ = self.scorer(*self.arrays(chunk))
      out[start:start + len(chunk)] = np.asarray(items)[:len(chunk), :k]
    return out

  def warmup(self, batches: Iterable[int] | None = None) -> None:
    """Compiles the batch buckets up to `max_batch` (or `batches`) ahead of traffic."""
    sizes = list(batches) if batches is not None else [
        1 << i for i in range(self.max_batch.bit_length()) if 1 << i <= self.max_batch]
    for b in sizes:
      history, cand = self.arrays([], batch=b)
      jax.block_until_ready(self.scorer(history, cand))
