"""The same step on 1 device and on an 8-device data mesh: equal losses and gradients."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqrec_jax import parallel
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.train import objectives, optim, steps
from seqrec_jax.train.state import create_train_state

LOSS = ml_collections.ConfigDict(dict(name="ce", vocab_chunk=0, num_negatives=1,
                                       seen_margin=0.0))
OPTIM = ml_collections.ConfigDict(dict(lr=1e-2, b1=0.9, b2=0.98, weight_decay=0.01,
                                       clip_norm=1.0, warmup_steps=2, schedule="cosine",
                                       final_lr_frac=0.1))


def _batches(n, batch=16, length=12, vocab=40, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    lengths = rng.integers(2, length + 1, size=batch)
    seqs = rng.integers(1, vocab + 1, size=(batch, length + 1))
    mask = np.arange(length + 1)[None] < lengths[:, None]
    seqs = np.where(mask, seqs, 0)
    targets = seqs[:, 1:].astype(np.int32)
    out.append({"inputs": np.where(targets > 0, seqs[:, :-1], 0).astype(np.int32),
                "targets": targets, "weights": (targets > 0).astype(np.float32)})
  return out


def _run(mesh_shape, devices, loss_cfg=LOSS):
  mesh = parallel.make_mesh(mesh_shape, ("data", "model"), devices=devices)
  model = SASRec(num_items=40, max_len=12, embed_dim=16, num_blocks=2, num_heads=2, mlp_dim=32,
                 dropout=0.1, emb_dropout=0.1)
  tx = optim.build_optimizer(OPTIM, total_steps=10)
  init = lambda r: model.init({"params": r}, jnp.zeros((1, 12), jnp.int32))["params"]
  state, state_sh = create_train_state(init, tx, seed=0, mesh=mesh)
  loss_fn = objectives.causal_loss(model, loss_cfg)
  step = steps.jit_train_step(loss_fn, tx, state_sh, mesh)
  batches = _batches(2) * 2  # two distinct batches, seen twice
  first = parallel.to_global(batches[0], parallel.batch_sharding(mesh))
  grads = jax.jit(jax.grad(lambda p: loss_fn(p, first, jax.random.PRNGKey(3))[0]))(state.params)
  losses = []
  for b in batches:
    state, m = step(state, parallel.to_global(b, parallel.batch_sharding(mesh)))
    losses.append(float(m["loss"]))
  return np.array(losses), jax.device_get(grads), jax.device_get(state.params)


@pytest.mark.parametrize("loss_name", ["ce", "bce"])
def test_one_vs_eight_devices_same_losses_and_gradients(loss_name):
  assert jax.device_count() >= 8, "conftest sets 8 host devices"
  cfg = ml_collections.ConfigDict(LOSS.to_dict())
  cfg.name = loss_name
  l1, g1, p1 = _run((1, 1), jax.devices()[:1], cfg)
  l8, g8, p8 = _run((8, 1), jax.devices()[:8], cfg)
  np.testing.assert_allclose(l1, l8, rtol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g1, g8)
  # Adam normalises each coordinate, so float-rounding differences in near-zero
  # gradients move parameters by up to ~lr * steps; compare at that scale.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=3e-3), p1, p8)
  if loss_name == "ce":  # (bce's fresh random negatives make 4 steps too noisy to compare)
    assert l1[2] < l1[0] and l1[3] < l1[1]  # and it learns


def test_item_table_sharded_over_model_axis_gives_same_loss():
  l1, _, _ = _run((1, 1), jax.devices()[:1])
  l42, _, _ = _run((4, 2), jax.devices()[:8])
  np.testing.assert_allclose(l1, l42, rtol=2e-5)
