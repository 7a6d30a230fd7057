"""Cold start (data.cold_items_frac): cold items are in no training sequence (nor the
training counts), stay in evaluation histories and targets, and the evaluator reports
the users whose target is cold."""

import numpy as np

from seqrec_jax import config as config_lib
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import SequenceDataset, split_for, train_item_counts


def dataset(num_users=50, num_items=30, length=12, seed=0):
  rng = np.random.default_rng(seed)
  offsets = np.arange(num_users + 1, dtype=np.int64) * length
  items = rng.integers(1, num_items + 1, size=offsets[-1]).astype(np.int32)
  return SequenceDataset(offsets=offsets, items=items, times=np.arange(offsets[-1]),
                         user_ids=np.arange(num_users), item_ids=np.arange(num_items + 1))


def test_cold_items_never_train_but_stay_in_evaluation():
  cfg = config_lib.base_config()
  cfg.data.cold_items_frac, cfg.data.cold_seed = 0.2, 3
  data = dataset()
  split = split_for(cfg.data, data)
  cold = split.cold
  assert cold.sum() == 6 and not cold[0]
  for u in range(data.num_users):
    seq = split.train_sequence(u)
    assert not cold[seq].any()
    assert split.train_lengths()[u] == seq.size
  assert train_item_counts(split)[cold].sum() == 0
  arrays = pipeline.eval_arrays(split, "test", 20)
  assert cold[arrays.targets].any()  # cold targets are evaluated
  assert cold[arrays.history[arrays.history > 0]].any()  # and kept in histories
  again = split_for(cfg.data, data)
  np.testing.assert_array_equal(again.cold, cold)  # the same items for the same seed
  cfg.data.cold_items_frac = 0.0
  assert split_for(cfg.data, data).cold is None


def test_evaluator_reports_cold_targets():
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  from seqrec_jax import evaluation, parallel  # pylint: disable=import-outside-toplevel
  from seqrec_jax.models.sasrec import SASRec  # pylint: disable=import-outside-toplevel
  cfg = config_lib.base_config()
  cfg.data.cold_items_frac = 0.3
  split = split_for(cfg.data, dataset())
  model = SASRec(num_items=30, max_len=8, embed_dim=16, mlp_dim=32, num_blocks=1)
  params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8), jnp.int32))["params"]
  mesh = parallel.make_mesh()
  sh = parallel.param_shardings(params, mesh)
  params = jax.device_put(nn.meta.unbox(params), sh)
  arrays = pipeline.eval_arrays(split, "test", 8)
  fn = evaluation.jit_rank_step(model, 30, sh, mesh)
  out, ranks = evaluation.evaluate_stage(fn, params, arrays, 16, mesh, (10,), with_ranks=True,
                                         cold_items=split.cold)
  sel = split.cold[arrays.targets[:len(arrays)]]
  assert out["cold/users"] == int(sel.sum()) > 0
  np.testing.assert_allclose(out["cold/hr@10"], np.mean(ranks.rank[sel] < 10))
  np.testing.assert_allclose(out["excl/cold/hr@10"], np.mean(ranks.rank_excl[sel] < 10))


def test_the_loss_gets_the_cold_items_as_never_negative():
  """Held out entirely: the training loss is told the cold items, for the full softmax
  as well as for a sampler that needs no frequencies (and gets nothing without them)."""
  from seqrec_jax.train import tasks  # pylint: disable=import-outside-toplevel
  cfg = config_lib.base_config()
  cfg.data.cold_items_frac = 0.2
  split = split_for(cfg.data, dataset())
  for name, sampler in (("ce", "uniform"), ("sampled_softmax", "uniform"),
                        ("sampled_softmax", "popularity")):
    cfg.loss.name, cfg.loss.sampler = name, sampler
    stats = tasks.loss_stats(cfg, split)
    np.testing.assert_array_equal(np.asarray(stats.never_negative), split.cold)
    assert (stats.log_freq is None) == (sampler == "uniform")
  cfg.data.cold_items_frac = 0.0
  cfg.loss.name = "ce"
  assert tasks.loss_stats(cfg, split_for(cfg.data, dataset())) is None
