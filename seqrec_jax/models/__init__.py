"""Model registry: `build_model(model_cfg, num_items)` by `model_cfg.name`."""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.models.seq2seq import Seq2Seq

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
  if name not in _DTYPES:
    raise ValueError(f"model.dtype={name!r}: expected one of {sorted(_DTYPES)}")
  return _DTYPES[name]


def build_model(cfg, num_items: int) -> nn.Module:
  """The configured model over items 1..num_items."""
  common = dict(num_items=num_items, max_len=cfg.max_len, embed_dim=cfg.embed_dim,
                num_blocks=cfg.num_blocks, num_heads=cfg.num_heads, mlp_dim=cfg.mlp_dim,
                dropout=cfg.dropout, dtype=compute_dtype(cfg.dtype),
                attention_impl=cfg.attention_impl or None)
  if cfg.name == "sasrec":
    return SASRec(emb_dropout=cfg.emb_dropout, input_in_state=cfg.input_in_state,
                  output_bias=cfg.output_bias, **common)
  if cfg.name == "bert4rec":
    return BERT4Rec(emb_dropout=cfg.emb_dropout, **common)
  if cfg.name == "seq2seq":
    return Seq2Seq(emb_dropout=cfg.emb_dropout, decoder_blocks=cfg.decoder_blocks, **common)
  raise ValueError(f"model.name={cfg.name!r}: expected one of ['sasrec', 'bert4rec', 'seq2seq']")
