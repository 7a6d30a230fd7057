"""What `model.item_repr="text_finetune"` starts from: each item text's token states after
the frozen lower layers of the pretrained encoder, and its top layers' weights.

    finetune_inputs(cfg, dataset) -> models.text_finetune.FinetuneText

The item texts are those `prepare_text` encodes (same template and model), cut to
`model.finetune_tokens` tokens. Row 0 (padding) has no tokens. The lower layers run
once here, on the host's devices; training then runs only the top
`model.finetune_layers` (models/text_finetune.py). `finetune_shapes(cfg)` is the same
description without any values: what a restore needs before the checkpoint fills it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from seqrec_jax import text as text_lib


def _split(cfg: Any, num_layers: int) -> int:
  n = int(cfg.model.finetune_layers)
  if not 1 <= n <= num_layers:
    raise ValueError(f"config.model.finetune_layers={n}: the text encoder has {num_layers} "
                     f"layers (expected 1..{num_layers})")
  return num_layers - n


def finetune_shapes(cfg: Any):
  """A `FinetuneText` with the encoder's config and shapes but no arrays."""
  # pylint: disable=import-outside-toplevel
  from seqrec_jax.models import text_encoder
  from seqrec_jax.models.text_finetune import FinetuneText
  spec = text_lib.model_spec(cfg.text.model)
  config = (text_encoder.BertConfig.tiny(vocab_size=text_lib.tiny_tokenizer().get_vocab_size())
            if spec.name == text_lib.TINY else text_encoder.config_from_hf_dir(spec.folder))
  _split(cfg, config.num_hidden_layers)
  return FinetuneText(config=config, layers=int(cfg.model.finetune_layers),
                      tokens=int(cfg.model.finetune_tokens), normalize=bool(cfg.text.normalize))


def finetune_inputs(cfg: Any, dataset, batch_size: int = 128):
  """Token states [n + 1, T, H] (bfloat16), masks, the top layers' params and the full
  encoder's item vectors (the first cached table) for every item of `dataset`."""
  # pylint: disable=import-outside-toplevel
  import dataclasses
  import jax
  import jax.numpy as jnp
  from seqrec_jax.models import text_encoder
  t0 = time.perf_counter()
  shapes = finetune_shapes(cfg)
  encoder = text_lib.TextEncoder(text_lib.model_spec(cfg.text.model),
                                 max_tokens=shapes.tokens, normalize=shapes.normalize)
  config, bert = encoder.config, encoder.params["bert"]
  lower = _split(cfg, config.num_hidden_layers)
  texts = text_lib.plan(cfg, dataset).texts
  ids = encoder.tokenize(texts[1:])
  rows, width = len(texts), shapes.tokens
  tokens = np.zeros((rows, width), np.int32)
  mask = np.zeros((rows, width), np.float32)
  for i, t in enumerate(ids, start=1):
    tokens[i, :len(t)] = t
    mask[i, :len(t)] = 1.0
  top = {f"layer_{i}": bert["encoder"][f"layer_{lower + i}"] for i in range(shapes.layers)}
  embeddings = text_encoder.Embeddings(config, parent=None)
  layer = text_encoder.Layer(config, parent=None)

  @jax.jit
  def run(tok, m):  # [B, T] -> lower states [B, T, H], pooled [B, H]
    x = embeddings.apply({"params": bert["embeddings"]}, tok, jnp.zeros_like(tok))
    bias = text_encoder.key_bias(m)
    for i in range(lower):
      x = layer.apply({"params": bert["encoder"][f"layer_{i}"]}, x, bias)
    states = x.astype(jnp.bfloat16)
    y = states.astype(jnp.float32)  # the top layers see what training will see
    for i in range(shapes.layers):
      y = layer.apply({"params": top[f"layer_{i}"]}, y, bias)
    pooled = text_encoder.mean_pool(y, m)
    return states, text_encoder.l2_normalize(pooled) if shapes.normalize else pooled

  hidden = np.zeros((rows, width, config.hidden_size), jnp.bfloat16)
  pooled = np.zeros((rows, config.hidden_size), np.float32)
  for start in range(1, rows, batch_size):
    stop = min(start + batch_size, rows)
    tok = np.zeros((batch_size, width), np.int32)
    m = np.zeros((batch_size, width), np.float32)
    tok[:stop - start], m[:stop - start] = tokens[start:stop], mask[start:stop]
    s, p = run(tok, m)
    hidden[start:stop] = np.asarray(s)[:stop - start]
    pooled[start:stop] = np.asarray(p)[:stop - start]
  lengths = mask[1:].sum(1)
  logging.info("text_finetune: %d item texts through %d frozen layers in %.1fs (%d tokens "
               "kept, %.1f mean, %d cut); top %d layer(s) trained", rows - 1, lower,
               time.perf_counter() - t0, width, float(lengths.mean()) if rows > 1 else 0.0,
               int((lengths >= width).sum()), shapes.layers)
  return dataclasses.replace(shapes, hidden=hidden, mask=mask, pooled=pooled,
                             top=jax.tree.map(np.asarray, top))
