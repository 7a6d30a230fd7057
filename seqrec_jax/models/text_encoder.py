"""A BERT text encoder in Flax: all-MiniLM-L6-v2's architecture, for item representations.

Not a recommendation model: nothing here registers with the model registry (this
package imports every module in it, so the module only imports what the models already
import; `safetensors` is imported by `params_from_safetensors` when it is called).

  embeddings: word + position + token type, LayerNorm
  N layers:   post-LN self-attention (x = LN(x + Attn(x))), GELU feed-forward
              (x = LN(x + W2 gelu(W1 x)))
  pooling:    mean over the attention mask, then (optionally) L2 normalisation

as in `transformers.BertModel` followed by sentence-transformers' `Pooling(mean)` and
`Normalize`. The parameter tree mirrors the Hugging Face names, so
`params_from_hf(state)` maps a `model.safetensors` state dict onto it one key at a time
(Dense weights transposed). `BertConfig.tiny()` is a small random-weight version of the
same code for tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The fields of a Hugging Face BERT `config.json` the encoder uses."""

  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"  # gelu (erf, as in BERT) | gelu_new / gelu_pytorch_tanh (tanh approx.)
  pad_token_id: int = 0

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any]) -> "BertConfig":
    """From a parsed `config.json`; architectures this encoder does not implement raise."""
    if hf.get("model_type", "bert") != "bert":
      raise ValueError(f"text encoder: model_type={hf.get('model_type')!r}, expected 'bert'")
    if hf.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError("text encoder: only absolute position embeddings are implemented, "
                       f"config has {hf['position_embedding_type']!r}")
    if hf.get("hidden_act", "gelu") not in _ACTIVATIONS:
      raise ValueError(f"text encoder: hidden_act={hf['hidden_act']!r}, expected one of "
                       f"{sorted(_ACTIVATIONS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in hf.items() if k in names})

  @classmethod
  def tiny(cls, vocab_size: int = 128) -> "BertConfig":
    """A 2-layer, 32-wide BERT for tests (random weights; same code path)."""
    return cls(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads


_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def _dense(features: int, name: str, dtype: Dtype) -> nn.Dense:
  return nn.Dense(features, name=name, dtype=dtype, param_dtype=jnp.float32,
                  kernel_init=nn.initializers.normal(0.02))


def _layer_norm(cfg: BertConfig, dtype: Dtype) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=cfg.layer_norm_eps, name="LayerNorm", dtype=dtype,
                      param_dtype=jnp.float32)


class SelfAttention(nn.Module):
  """Multi-head self-attention projections (`attention.self.{query,key,value}`)."""

  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    """x: [B, L, H]; bias: [B, 1, 1, L] additive key mask -> context [B, L, H]."""
    cfg = self.config
    b, length, _ = x.shape
    split = lambda t: t.reshape(b, length, cfg.num_attention_heads, cfg.head_dim)
    q = split(_dense(cfg.hidden_size, "query", self.dtype)(x))  # [B, L, N, Dh]
    k = split(_dense(cfg.hidden_size, "key", self.dtype)(x))
    v = split(_dense(cfg.hidden_size, "value", self.dtype)(x))
    logits = jnp.einsum("bqnd,bknd->bnqk", q, k) / np.sqrt(cfg.head_dim).astype(np.float32)
    weights = jax.nn.softmax(logits.astype(jnp.float32) + bias, axis=-1).astype(self.dtype)
    ctx = jnp.einsum("bnqk,bknd->bqnd", weights, v)  # [B, L, N, Dh]
    return ctx.reshape(b, length, cfg.hidden_size)


class AddNorm(nn.Module):
  """`dense` then LayerNorm(dense(h) + residual): BERT's `*.output` blocks."""

  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array, residual: jax.Array) -> jax.Array:
    out = _dense(self.config.hidden_size, "dense", self.dtype)(h)
    return _layer_norm(self.config, self.dtype)(out + residual)


class Attention(nn.Module):
  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    ctx = SelfAttention(self.config, self.dtype, name="self")(x, bias)
    return AddNorm(self.config, self.dtype, name="output")(ctx, x)


class Intermediate(nn.Module):
  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = _dense(self.config.intermediate_size, "dense", self.dtype)(x)
    return _ACTIVATIONS[self.config.hidden_act](h)


class Layer(nn.Module):
  """One post-LN transformer layer (`encoder.layer.<i>`)."""

  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    x = Attention(self.config, self.dtype, name="attention")(x, bias)
    h = Intermediate(self.config, self.dtype, name="intermediate")(x)
    return AddNorm(self.config, self.dtype, name="output")(h, x)


class Embeddings(nn.Module):
  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array) -> jax.Array:
    cfg = self.config
    init = nn.initializers.normal(0.02)
    embed = lambda n, name: nn.Embed(n, cfg.hidden_size, name=name, embedding_init=init,
                                     dtype=self.dtype, param_dtype=jnp.float32)
    positions = jnp.arange(input_ids.shape[1])[None, :]  # [1, L]
    x = (embed(cfg.vocab_size, "word_embeddings")(input_ids)
         + embed(cfg.max_position_embeddings, "position_embeddings")(positions)
         + embed(cfg.type_vocab_size, "token_type_embeddings")(token_type_ids))
    return _layer_norm(cfg, self.dtype)(x)


class Encoder(nn.Module):
  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    for i in range(self.config.num_hidden_layers):
      x = Layer(self.config, self.dtype, name=f"layer_{i}")(x, bias)
    return x


class BertModel(nn.Module):
  """Token states [B, L, H] (`last_hidden_state`); no pooler, no dropout (inference)."""

  config: BertConfig
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array,
               token_type_ids: jax.Array | None = None) -> jax.Array:
    if input_ids.shape[1] > self.config.max_position_embeddings:
      raise ValueError(f"text encoder: {input_ids.shape[1]} tokens exceed "
                       f"max_position_embeddings={self.config.max_position_embeddings}")
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = Embeddings(self.config, self.dtype, name="embeddings")(input_ids, token_type_ids)
    return Encoder(self.config, self.dtype, name="encoder")(x, key_bias(attention_mask))


def key_bias(attention_mask: jax.Array) -> jax.Array:
  """[B, L] (1 = real token) -> [B, 1, 1, L] additive attention bias. Padding keys get a
  large finite negative (not -inf): an all-padding row stays finite."""
  return jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                   jnp.finfo(jnp.float32).min).astype(jnp.float32)


def mean_pool(states: jax.Array, attention_mask: jax.Array) -> jax.Array:
  """[B, L, H], [B, L] -> [B, H]: the mean of the states of real tokens (0 for none)."""
  mask = attention_mask.astype(jnp.float32)[..., None]  # [B, L, 1]
  total = jnp.sum(states.astype(jnp.float32) * mask, axis=1)
  return total / jnp.maximum(jnp.sum(mask, axis=1), 1e-9)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along the last axis (torch.nn.functional.normalize), written
  with a finite gradient at x = 0 (a text without tokens pools to 0; text_finetune
  differentiates through it)."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


class SentenceEncoder(nn.Module):
  """Texts as token ids -> one vector each: BERT, mean pooling, optional L2 norm.

  `__call__(input_ids [B, L], attention_mask [B, L]) -> [B, hidden_size]` float32.
  Parameters live under `bert` (the Hugging Face `BertModel` names).
  """

  config: BertConfig
  normalize: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array,
               token_type_ids: jax.Array | None = None) -> jax.Array:
    states = BertModel(self.config, self.dtype, name="bert")(input_ids, attention_mask,
                                                             token_type_ids)
    pooled = mean_pool(states, attention_mask)
    return l2_normalize(pooled) if self.normalize else pooled


def param_shapes(config: BertConfig) -> dict:
  """The parameter tree of `SentenceEncoder(config)` as shapes (nothing is computed)."""
  ids = jnp.ones((1, 4), jnp.int32)
  return jax.eval_shape(
      lambda: SentenceEncoder(config).init(jax.random.PRNGKey(0), ids, ids)["params"])


def init_params(config: BertConfig, seed: int = 0) -> dict:
  """Random parameters of `SentenceEncoder(config)`, BERT's initialisation (weights
  N(0, 0.02), biases 0, LayerNorm scales 1), drawn with numpy: deterministic for a seed
  and without compiling an initialiser (the tiny test encoder uses these)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name in ("kernel", "embedding"):
      return jnp.asarray(rng.normal(0.0, 0.02, leaf.shape).astype(np.float32))
    return jnp.full(leaf.shape, 1.0 if name == "scale" else 0.0, jnp.float32)
  return jax.tree_util.tree_map_with_path(draw, param_shapes(config))


# ------------------------------------------------------------------ Hugging Face weights

# Keys of a BertModel state dict that carry no parameter this encoder uses.
_IGNORED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def _hf_key(path: tuple[str, ...]) -> tuple[str, bool]:
  """A Flax parameter path under `bert` -> (Hugging Face key, transpose?)."""
  parts = [p.replace("layer_", "layer.") if p.startswith("layer_") else p for p in path]
  *mods, leaf = parts
  prefix = ".".join(mods)
  if leaf == "kernel":
    return f"{prefix}.weight", True  # torch Linear weight is [out, in]
  if leaf == "embedding":
    return f"{prefix}.weight", False
  if leaf == "scale":
    return f"{prefix}.weight", False  # LayerNorm gamma
  return f"{prefix}.{leaf}", False


def params_from_hf(state: Mapping[str, np.ndarray], config: BertConfig) -> dict:
  """A Hugging Face BertModel state dict (numpy arrays) -> `SentenceEncoder` params.

  Keys may carry a `bert.` prefix (BertForMaskedLM and friends). Every parameter of the
  encoder must be present with its exact shape; keys left over (other than position
  ids and the unused pooler) are an error too, so a different architecture cannot load
  silently.
  """
  state = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}
  template = param_shapes(config)["bert"]
  flat = {}
  used = set()
  problems = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
    names = tuple(p.key for p in path)
    key, transpose = _hf_key(names)
    if key not in state:
      problems.append(f"missing {key}")
      continue
    value = np.asarray(state[key], dtype=np.float32)
    value = value.T if transpose else value
    if value.shape != leaf.shape:
      problems.append(f"{key}: shape {value.shape} (after transpose), expected {leaf.shape}")
      continue
    flat[names] = value
    used.add(key)
  extra = sorted(k for k in state if k not in used and k not in _IGNORED)
  if extra:
    problems.append(f"unexpected keys {extra[:5]}" + (" ..." if len(extra) > 5 else ""))
  if problems:
    raise ValueError("text encoder weights do not match the BERT config: "
                     + "; ".join(problems[:8]))
  bert: dict = {}
  for names, value in flat.items():
    node = bert
    for n in names[:-1]:
      node = node.setdefault(n, {})
    node[names[-1]] = jnp.asarray(value)
  return {"bert": bert}


def params_from_safetensors(path: str, config: BertConfig) -> dict:
  """`SentenceEncoder` params from a Hugging Face `model.safetensors` (needs safetensors)."""
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  return params_from_hf(load_file(path), config)


def config_from_hf_dir(model_dir: str) -> BertConfig:
  """The `BertConfig` of a Hugging Face model folder (its `config.json`)."""
  with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
    return BertConfig.from_hf(json.load(f))
