"""The same step on 1 device, on an 8-device data mesh and on a (4 data, 2 model) mesh
whose `model` axis splits the item table: equal losses and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from seqrec_jax import config as config_lib, parallel
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.train import objectives, steps
from seqrec_jax.train.state import create_train_state

NUM_ITEMS, EMBED = 40, 16
TABLE_ROWS = 128  # ItemEmbedding pads the 42 rows up to its vocab_multiple


def _batches(n, batch=16, length=12, vocab=NUM_ITEMS, seed=0):
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


def _table_layout(params):
  """(partition spec, shapes of the addressable shards) of the item table."""
  table = params["item_embedding"]["embedding"]
  return table.sharding.spec, sorted({s.data.shape for s in table.addressable_shards})


@functools.lru_cache(maxsize=None)
def _run(mesh_shape, loss_name):
  """4 steps (two batches, twice) on the first prod(mesh_shape) devices.

  -> (losses [4], gradients on the first batch, final params, table layout after init,
  table layout after the steps, specs of the optimizer-state leaves shaped like the table).
  """
  mesh = parallel.make_mesh(mesh_shape, ("data", "model"),
                            devices=jax.devices()[: int(np.prod(mesh_shape))])
  loss_cfg = config_lib.base_config().loss  # every field at its default, then:
  loss_cfg.name, loss_cfg.vocab_chunk, loss_cfg.num_negatives = loss_name, 0, 1
  model = SASRec(num_items=NUM_ITEMS, max_len=12, embed_dim=EMBED, num_blocks=2, num_heads=2,
                 mlp_dim=32, dropout=0.1, emb_dropout=0.1)
  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 10, 1e-3),
                               b1=0.9, b2=0.98, weight_decay=0.01))
  init = lambda r: model.init({"params": r}, jnp.zeros((1, 12), jnp.int32))["params"]
  state, state_sh = create_train_state(init, tx, seed=0, mesh=mesh)
  init_layout = _table_layout(state.params)
  loss_fn = objectives.causal_loss(model, loss_cfg)
  step = jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn, tx=tx),
                 in_shardings=(state_sh, parallel.batch_sharding(mesh)),
                 out_shardings=(state_sh, parallel.replicated(mesh)))
  batches = _batches(2) * 2  # two distinct batches, seen twice
  first = parallel.to_global(batches[0], parallel.batch_sharding(mesh))
  grads = jax.jit(jax.grad(lambda p: loss_fn(p, first, jax.random.PRNGKey(3))[0]))(state.params)
  losses = []
  for b in batches:
    state, m = step(state, parallel.to_global(b, parallel.batch_sharding(mesh)))
    losses.append(float(m["loss"]))
  opt_specs = {leaf.sharding.spec for leaf in jax.tree.leaves(state.opt_state)
               if leaf.shape == (TABLE_ROWS, EMBED)}
  return (np.array(losses), jax.device_get(grads), jax.device_get(state.params), init_layout,
          _table_layout(state.params), opt_specs)


def _assert_same_run(reference, other):
  l1, g1, p1 = reference[:3]
  l2, g2, p2 = other[:3]
  np.testing.assert_allclose(l1, l2, rtol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g1, g2)
  # Adam normalises each coordinate, so float-rounding differences in near-zero
  # gradients move parameters by up to ~lr * steps; compare at that scale.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=3e-3), p1, p2)


# BCE's copy (~75 s on 2 cores) runs with -m slow; CE's runs by default.
@pytest.mark.parametrize("loss_name", ["ce", pytest.param("bce", marks=pytest.mark.slow)])
def test_one_vs_eight_devices_same_losses_and_gradients(loss_name):
  assert jax.device_count() >= 8, "conftest sets 8 host devices"
  one = _run((1, 1), loss_name)
  _assert_same_run(one, _run((8, 1), loss_name))
  if loss_name == "ce":  # (bce's fresh random negatives make 4 steps too noisy to compare)
    l1 = one[0]
    assert l1[2] < l1[0] and l1[3] < l1[1]  # and it learns


@pytest.mark.parametrize("loss_name", ["ce", pytest.param("bce", marks=pytest.mark.slow)])
def test_item_table_sharded_over_model_axis_gives_same_losses_and_gradients(loss_name):
  assert jax.device_count() >= 8, "conftest sets 8 host devices"
  run = _run((4, 2), loss_name)
  init_layout, final_layout, opt_specs = run[3:]
  # The table's vocab rows are split in two over `model` (and replicated over `data`):
  # each of the 8 devices holds 64 of the 128 rows, through the steps, and so do Adam's
  # moments of it.
  expected = (P("model", None), [(TABLE_ROWS // 2, EMBED)])
  assert init_layout == expected, f"item table after init: {init_layout}, expected {expected}"
  assert final_layout == expected, f"item table after 4 steps: {final_layout}"
  assert opt_specs == {P("model", None)}, f"optimizer moments of the table: {opt_specs}"
  _assert_same_run(_run((1, 1), loss_name), run)
