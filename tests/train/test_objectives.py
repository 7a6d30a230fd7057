"""Objectives wire the batch into the right loss."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from seqrec_jax import losses
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.train import objectives


def _loss_cfg(margin):
  return ml_collections.ConfigDict(dict(name="ce", vocab_chunk=0, num_negatives=1,
                                        seen_margin=margin))


def test_causal_loss_applies_the_seen_margin_to_the_input_prefix():
  model = SASRec(num_items=12, max_len=6, embed_dim=8, num_blocks=1, num_heads=1, mlp_dim=16,
                 dropout=0.0, emb_dropout=0.0)
  inputs = jnp.array([[3, 5, 3, 2, 0, 0], [1, 2, 4, 6, 7, 8]])
  targets = jnp.array([[5, 1, 2, 4, 0, 0], [2, 4, 6, 7, 8, 9]])
  batch = {"inputs": inputs, "targets": targets, "weights": (targets > 0).astype(jnp.float32)}
  params = model.init(jax.random.PRNGKey(0), inputs)["params"]
  rng = jax.random.PRNGKey(1)
  plain, _ = objectives.causal_loss(model, _loss_cfg(0.0))(params, batch, rng)
  margin, _ = objectives.causal_loss(model, _loss_cfg(2.0))(params, batch, rng)
  hidden = model.apply({"params": params}, inputs)
  table = model.apply({"params": params}, method=model.item_table)
  expected = losses.full_softmax_ce(hidden, table, targets, batch["weights"], seen=inputs,
                                    seen_margin=2.0)
  np.testing.assert_allclose(margin, expected, rtol=1e-5)
  assert margin > plain
  # the cloze task's inputs hold mask tokens and later items: never a "seen" prefix
  cloze, _ = objectives.cloze_loss(model, _loss_cfg(2.0))(params, batch, rng)
  np.testing.assert_allclose(cloze, plain, rtol=1e-6)
