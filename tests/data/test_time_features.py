"""Time features (model.time_features): the ids of each interaction, their journey
through training windows, packed rows and evaluation histories (aligned with their
items), the clear errors, and a planted signal only the time features can carry."""

import numpy as np
import pytest

from seqrec_jax import config as config_lib
from seqrec_jax.data import packing, pipeline
from seqrec_jax.data import time_features as tf
from seqrec_jax.data.dataset import SequenceDataset, split_for

DAY = 86400
MONDAY = 4 * DAY  # 1970-01-05 00:00 UTC


def test_gap_and_hour_ids_by_hand():
  # one user: first event, +30 s, +2 min, +1 h; a second user starts fresh
  times = np.array([MONDAY, MONDAY + 30, MONDAY + 150, MONDAY + 3750, MONDAY + 7 * DAY - 3600])
  offsets = np.array([0, 4, 5])
  # log2(1 + gap/60 s): 30 s -> 0.58 -> bucket 0 (id 1); 120 s -> log2(3) -> 1 (id 2);
  # 3600 s -> log2(61) -> 5 (id 6)
  np.testing.assert_array_equal(tf.gap_ids(times, offsets), [tf.GAP_FIRST, 1, 2, 6, tf.GAP_FIRST])
  # Monday 00:xx -> 1, Monday 01:02 -> 2, Sunday 23:00 -> 168
  np.testing.assert_array_equal(tf.hour_ids(times, offsets), [1, 1, 1, 2, 168])
  assert tf.parse("gap, hour") == ("gap", "hour") and tf.vocab_sizes("hour") == (169,)
  with pytest.raises(ValueError, match="did you mean .gap."):
    tf.parse("gapp")


def dataset(num_users=30, length=9, num_items=20, seed=0, order_only=False):
  rng = np.random.default_rng(seed)
  offsets = np.arange(num_users + 1, dtype=np.int64) * length
  items = rng.integers(1, num_items + 1, size=offsets[-1]).astype(np.int32)
  times = (np.arange(offsets[-1]) if order_only
           else np.cumsum(rng.integers(0, 10 * DAY, size=offsets[-1])) + MONDAY)
  return SequenceDataset(offsets=offsets, items=items, times=times.astype(np.int64),
                         user_ids=np.arange(num_users), item_ids=np.arange(num_items + 1))


def test_features_travel_aligned_with_their_items():
  cfg = config_lib.base_config()
  data = dataset()
  plain = split_for(cfg.data, data)
  timed = split_for(cfg.data, data, "gap,hour")
  feats = tf.interaction_features(data, "gap,hour")  # [N, 2]
  example = pipeline.CausalExample(max_len=5, crop="random")
  for u in range(data.num_users):
    a = example(pipeline.TrainSequences(plain)[u], np.random.default_rng(u))
    b = example(pipeline.TrainSequences(timed)[u], np.random.default_rng(u))
    assert b["inputs"].shape == (5, 3)
    np.testing.assert_array_equal(b["inputs"][:, 0], a["inputs"])  # same crop, same items
    np.testing.assert_array_equal(b["targets"], a["targets"])
    # each input's features are those of that very interaction: find it in the user's log
    start = data.offsets[u]
    seq = data.items[start:timed.train_end[u]]
    n = int((a["inputs"] > 0).sum())
    for end in range(n + 1, seq.size + 1):  # the crop's end: the window that matches
      if np.array_equal(seq[end - n - 1:end - 1], a["inputs"][:n]):
        np.testing.assert_array_equal(b["inputs"][:n, 1:], feats[start + end - n - 1:start + end - 1])
        break
    else:
      raise AssertionError("window not found")
  # evaluation histories: the same items, each with its own features
  ev_a = pipeline.eval_arrays(plain, "test", 6)
  ev_b = pipeline.eval_arrays(timed, "test", 6)
  np.testing.assert_array_equal(ev_b.history[..., 0], ev_a.history)
  np.testing.assert_array_equal(ev_b.seen, ev_a.seen)
  u = int(timed.eval_users[0])
  end = data.offsets[u + 1] - 1  # the test target's index; history = the 6 before it
  np.testing.assert_array_equal(ev_b.history[0, :, 1:], feats[end - 6:end])
  # packed rows carry the token columns into the same slots
  src = packing.PackedSequences(pipeline.TrainSequences(timed),
                                example.window_lengths(pipeline.TrainSequences(timed).lengths), 10)
  row = packing.PackRow(example, 10, seed=0)(packing.PackedEpochs(src, seed=0)[0])
  assert row["inputs"].shape == (10, 3)
  real = row["segment_ids"] > 0
  assert (row["inputs"][real, 0] > 0).all() and (row["inputs"][real, 1:] > 0).all()
  assert (row["inputs"][~real] == 0).all()


def test_clear_errors():
  cfg = config_lib.base_config()
  with pytest.raises(ValueError, match="model.time_features='gap'.*no timestamps"):
    split_for(cfg.data, dataset(order_only=True), "gap")
  for key, value, match in (("model.name", "bert4rec", "takes no time features"),
                            ("train.input", "device", "train.input='grain'")):
    cfg = config_lib.base_config()
    cfg.model.time_features = "gap"
    cfg.update_from_flattened_dict({key: value})
    with pytest.raises(ValueError, match=match):
      config_lib.validate(cfg)


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_a_time_model_refuses_a_history_without_times(name):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel
  cls = models.MODELS.get(name)
  model = cls(num_items=20, max_len=6, embed_dim=16, mlp_dim=32, num_blocks=1,
              time_features=("gap", "hour"))
  params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 6), jnp.int32))
  tokens = jnp.stack([jnp.array([[3, 4, 5, 0, 0, 0]]), jnp.array([[25, 1, 3, 0, 0, 0]]),
                      jnp.array([[1, 1, 2, 0, 0, 0]])], axis=-1)  # [1, 6, 3]
  a = model.apply(params, tokens, method=cls.encode)
  later = tokens.at[0, 2, 1].set(7)  # the last item's gap changes: its state changes
  b = model.apply(params, later, method=cls.encode)
  assert not np.allclose(a, b)
  first = model.apply(params, later)[0, :2]  # causal: earlier states do not see it
  np.testing.assert_allclose(first, model.apply(params, tokens)[0, :2], atol=1e-6)
  with pytest.raises(ValueError, match="model.time_features='gap,hour'"):
    model.apply(params, tokens[..., 0], method=cls.encode)


def _planted_ml100k(path, users=300, pairs=8, items=30, seed=0):
  """u.data rows. Each user alternates a free item (random 3..items) and a determined
  one: item 1 when the free item came after a long break (30 days), item 2 when it came
  a minute after the previous event. Only the free item's gap tells which."""
  rng = np.random.default_rng(seed)
  rows = []
  for u in range(1, users + 1):
    t = MONDAY + int(rng.integers(0, DAY))
    for _ in range(pairs):
      long_break = rng.random() < 0.5
      t += 30 * DAY if long_break else 60
      rows.append((u, int(rng.integers(3, items + 1)), t))
      t += 60
      rows.append((u, 1 if long_break else 2, t))
  path.write_text("".join(f"{u}\t{i}\t5\t{t}\n" for u, i, t in rows))


def test_the_gap_feature_learns_what_ids_cannot(tmp_path):
  """The test target is a determined item: with the gap feature the model can tell 1
  from 2 (HR@1 near 1); from the items alone it is a coin flip (about 0.5)."""
  from seqrec_jax.train import loop  # pylint: disable=import-outside-toplevel
  _planted_ml100k(tmp_path / "u.data")
  hr1 = {}
  for feats in ("", "gap"):
    cfg = config_lib.base_config()
    cfg.data.format, cfg.data.path, cfg.data.cache_dir = "ml100k", str(tmp_path / "u.data"), ""
    cfg.data.dedup, cfg.data.min_rating = "none", 0
    cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim, cfg.model.num_blocks = 16, 32, 64, 1
    cfg.model.time_features = feats
    cfg.train.batch_size, cfg.train.num_epochs, cfg.train.eval_every_epochs = 32, 25, 100
    cfg.model.dropout = cfg.model.emb_dropout = 0.1
    cfg.train.log_every_steps, cfg.eval.ks = 1000, (1, 10)
    cfg.eval.select_metric = "ndcg@10"
    cfg.optim.lr, cfg.optim.warmup_steps = 5e-3, 10
    report = loop.train_and_evaluate(cfg, str(tmp_path / f"run_{feats or 'none'}"))
    hr1[feats] = report["test"]["hr@1"]
  assert hr1["gap"] > 0.9, hr1
  assert hr1[""] < 0.7, hr1
  _recommend_with_times(tmp_path)


def _recommend_with_times(tmp_path):
  """The trained gap model recommends through `Recommender`: the same ad-hoc history
  with a long break before its last item gets item 1 first, with a short one item 2;
  a known user's times come from the data; a request without times is refused."""
  from seqrec_jax.infer.recommend import Recommender  # pylint: disable=import-outside-toplevel
  rec = Recommender.from_workdir(str(tmp_path / "run_gap"))
  assert rec.info["time_features"] == ["gap"]
  history = [7, 1, 9]
  long_break = [MONDAY, MONDAY + 60, MONDAY + 60 + 30 * DAY]
  short = [MONDAY, MONDAY + 60, MONDAY + 120]
  top = lambda times: rec.recommend(history=history, times=times, k=1, exclude_seen=False)[0]
  assert top(long_break)["item"] == 1 and top(short)["item"] == 2
  assert len(rec.recommend(user=1, k=3)) == 3
  with pytest.raises(ValueError, match="give the unix time of each history item"):
    rec.recommend(history=history, k=1)
  with pytest.raises(ValueError, match="3 times for a history of 2 items"):
    rec.recommend(history=[7, 9], times=short, k=1)
  with pytest.raises(ValueError, match="must not decrease"):
    rec.recommend(history=history, times=short[::-1], k=1)
  plain = Recommender.from_workdir(str(tmp_path / "run_none"))
  with pytest.raises(ValueError, match="trained without model.time_features"):
    plain.recommend(history=history, times=short, k=1)
  # the exported function takes the tokens too; its loader computes features from times
  from seqrec_jax.infer import export  # pylint: disable=import-outside-toplevel
  meta = export.export_recommender(str(tmp_path / "run_gap"), str(tmp_path / "export"), k=5)
  assert meta["time_features"] == ["gap"]
  ex = export.load_recommender(str(tmp_path / "export"))
  top_ex = lambda times: ex.recommend(history=history, times=times, k=1, exclude_seen=False)[0]
  assert top_ex(long_break)["item"] == 1 and top_ex(short)["item"] == 2
  assert ([r["item"] for r in ex.recommend(user=1, k=3)]
          == [r["item"] for r in rec.recommend(user=1, k=3)])
