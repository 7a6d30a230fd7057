"""Device-resident input path: same batches as Grain, scan == single steps, end to end."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from seqrec_jax import config as config_lib
from seqrec_jax import parallel
from seqrec_jax.data import device_data, pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.train import loop, objectives, optim, steps
from seqrec_jax.train.state import create_train_state

LOSS = ml_collections.ConfigDict(dict(name="ce", vocab_chunk=0, num_negatives=1,
                                       seen_margin=0.0))
OPTIM = ml_collections.ConfigDict(dict(lr=1e-2, b1=0.9, b2=0.98, weight_decay=0.01,
                                       clip_norm=1.0, warmup_steps=2, schedule="cosine",
                                       final_lr_frac=0.1))
MAX_LEN, VOCAB = 8, 30


def _split(num_users=37, seed=0):
  """Users with 2..25 items, so some histories are longer than the window."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(2, 26, size=num_users)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(1, VOCAB + 1, size=offsets[-1]).astype(np.int32)
  data = SequenceDataset(offsets=offsets, items=items, times=np.arange(offsets[-1]),
                         user_ids=np.arange(num_users), item_ids=np.arange(VOCAB + 1))
  return leave_one_out(data)


def _grain_batches(split, batch, n, seed, process_count=1):
  """n global batches of the Grain path (processes' local batches stacked)."""
  source = pipeline.TrainSequences(split)
  iters = [iter(pipeline.train_dataset(source, pipeline.CausalExample(MAX_LEN), global_batch=batch,
                                       seed=seed, process_index=p, process_count=process_count))
           for p in range(process_count)]
  out = []
  for _ in range(n):
    parts = [next(it) for it in iters]
    out.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
  return out


@pytest.mark.parametrize("process_count", [1, 2])
def test_crop_last_batches_equal_grain(process_count):
  split, batch, n = _split(), 8, 12  # 12 batches of 8 cross several epochs of 3x users
  source = pipeline.TrainSequences(split)
  data = device_data.build_causal_data(split, source.users, max_len=MAX_LEN, batch_size=batch,
                                       num_steps=n, seed=5, process_count=process_count)
  make = jax.jit(device_data.causal_batch)
  for k, want in enumerate(_grain_batches(split, batch, n, seed=5, process_count=process_count)):
    got = jax.device_get(make(data, jnp.int32(k)))
    for key in ("inputs", "targets", "weights"):
      np.testing.assert_array_equal(got[key], want[key], err_msg=f"batch {k} {key}")
      assert got[key].dtype == want[key].dtype


def test_crop_random_gives_valid_reproducible_windows():
  split = _split()
  source = pipeline.TrainSequences(split)
  data = device_data.build_causal_data(split, source.users, max_len=MAX_LEN, batch_size=8,
                                       num_steps=5, seed=1, crop="random")
  make = jax.jit(device_data.causal_batch)
  seqs = [source[i] for i in range(len(source))]
  for k in range(5):
    got = jax.device_get(make(data, jnp.int32(k)))
    again = jax.device_get(make(data, jnp.int32(k)))
    np.testing.assert_array_equal(got["inputs"], again["inputs"])
    for inputs, targets in zip(got["inputs"], got["targets"]):
      n = int((targets > 0).sum())
      window = np.concatenate([inputs[:1], targets[:n]])  # n + 1 consecutive items
      assert any(  # a contiguous piece of some training sequence, full length when it can be
          len(s) >= n + 1 and any((s[i:i + n + 1] == window).all() for i in range(len(s) - n))
          and (n == MAX_LEN or n == len(s) - 1) for s in seqs)


def _setup(mesh):
  model = SASRec(num_items=VOCAB, max_len=MAX_LEN, embed_dim=16, num_blocks=2, num_heads=2,
                 mlp_dim=32, dropout=0.1, emb_dropout=0.1)
  tx = optim.build_optimizer(OPTIM, total_steps=20)
  init = lambda r: model.init({"params": r}, jnp.zeros((1, MAX_LEN), jnp.int32))["params"]
  state, state_sh = create_train_state(init, tx, seed=0, mesh=mesh)
  return objectives.causal_loss(model, LOSS), tx, state, state_sh


@pytest.mark.slow  # ~30 s
def test_device_path_trains_like_grain_path():
  """Same seed, crop="last": the same batches, so the same losses step by step."""
  split, batch, n = _split(), 8, 6
  mesh = parallel.make_mesh((-1, 1), ("data", "model"))
  loss_fn, tx, state, state_sh = _setup(mesh)
  grain_step = steps.jit_train_step(loss_fn, tx, state_sh, mesh)
  grain_losses = []
  for b in _grain_batches(split, batch, n, seed=2):
    state, m = grain_step(state, parallel.to_global(b, parallel.batch_sharding(mesh)))
    grain_losses.append(float(m["loss"]))

  _, _, state2, _ = _setup(mesh)
  data = device_data.build_causal_data(
      split, pipeline.TrainSequences(split).users, max_len=MAX_LEN, batch_size=batch,
      num_steps=n, seed=2, mesh=mesh)
  chunk = steps.TrainSteps(loss_fn, tx, state_sh, mesh, device_data.causal_batch)
  state2, m = chunk(state2, data, n)
  np.testing.assert_allclose(np.asarray(m["loss"]), grain_losses, rtol=2e-5, atol=2e-5)
  assert int(state2.step) == n  # (params are compared through the losses: Adam blows up
  # float noise in near-zero gradients, e.g. the query bias, beyond a tight elementwise check)


@pytest.mark.slow  # ~22 s
def test_scan_of_n_steps_equals_n_single_steps():
  split, batch = _split(), 8
  mesh = parallel.make_mesh((-1, 1), ("data", "model"))
  loss_fn, tx, state, state_sh = _setup(mesh)
  data = device_data.build_causal_data(
      split, pipeline.TrainSequences(split).users, max_len=MAX_LEN, batch_size=batch,
      num_steps=8, seed=0, crop="random", mesh=mesh)
  chunk = steps.TrainSteps(loss_fn, tx, state_sh, mesh, device_data.causal_batch)
  single = []
  one_state = state
  _, _, many_state, _ = _setup(mesh)
  for _ in range(4):
    one_state, m = chunk(one_state, data, 1)
    single.append(float(m["loss"][0]))
  many_state, m = chunk(many_state, data, 4)
  np.testing.assert_allclose(np.asarray(m["loss"]), single, rtol=2e-5, atol=2e-5)
  assert int(many_state.step) == int(one_state.step) == 4
  for a, b in zip(jax.tree.leaves(one_state.params), jax.tree.leaves(many_state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-3)


def _smoke(**overrides):
  cfg = default.get_config("smoke")
  cfg.train.input = "device"
  for key, value in overrides.items():
    section, field = key.split(".")
    cfg[section][field] = value
  return cfg


@pytest.mark.reliability  # ~100 s on 2 cores: with the kill / resume suite
def test_loop_end_to_end_on_device_and_resume(tmp_path):
  straight = loop.train_and_evaluate(_smoke(), str(tmp_path / "a"))  # one chunk per epoch
  assert straight["test"]["users"] > 0 and np.isfinite(straight["test"]["ndcg@10"])
  first = loop.train_and_evaluate(
      _smoke(**{"train.steps_per_dispatch": 4, "train.max_steps_this_run": 3}),
      str(tmp_path / "b"))
  assert first["interrupted_at_step"] == 3 and first["resumed_from"] == 0  # mid-epoch
  resumed = loop.train_and_evaluate(_smoke(**{"train.steps_per_dispatch": 4}),
                                    str(tmp_path / "b"))
  assert resumed["resumed_from"] == 3  # restored state.step 3, not retrained from 0
  assert resumed["best_step"] == straight["best_step"]
  for key, value in straight["test"].items():
    assert resumed["test"][key] == pytest.approx(value, abs=1e-5), key


def test_device_input_rejects_other_tasks():
  cfg = default.get_config("smoke")
  cfg.train.input = "device"
  cfg.model.name = "bert4rec"
  with pytest.raises(ValueError, match="train.input='device'"):
    config_lib.validate(cfg)


def test_device_input_rejects_length_grouping():
  cfg = default.get_config("smoke")
  cfg.train.input = "device"
  cfg.train.length_grouping = 4
  with pytest.raises(ValueError, match="train.length_grouping"):
    config_lib.validate(cfg)
