"""Item representations (model.item_repr): id unchanged, text_init from the text's
principal components, text_adapter (sum / gate) and text_only with a frozen text table
that neither gradients nor weight decay move, and special rows kept learned."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqrec_jax import config as config_lib
from seqrec_jax.models import build_model
from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.models.item_repr import HostArray, ItemRepresentation, pca_init
from seqrec_jax.train import optim

N, D, T = 12, 8, 6


def text_matrix(seed=0):
  rng = np.random.default_rng(seed)
  text = rng.normal(size=(N + 1, T)).astype(np.float32)
  text[0] = 0.0
  text[5] = text[3]  # items 3 and 5 have the same text
  return text


def init(mode, **kw):
  mod = ItemRepresentation(N, D, mode=mode, text_dim=T, text=HostArray(text_matrix()), **kw)
  params = mod.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
  return mod, nn.meta.unbox(params)


def test_id_mode_keeps_the_item_embedding_layout():
  cfg = config_lib.base_config()
  cfg.model.embed_dim = D
  model = build_model(cfg.model, N)
  params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 5), jnp.int32))["params"]
  assert nn.meta.unbox(params)["item_embedding"]["embedding"].shape == (128, D)
  assert set(params["item_embedding"]) == {"embedding"}  # checkpoints of earlier runs fit


def test_text_init_rows_follow_the_text():
  mod, params = init("text_init")
  table = np.asarray(mod.apply({"params": params}, method=mod.item_table))
  np.testing.assert_allclose(table[3], table[5], rtol=1e-5)  # same text, same start
  assert not np.allclose(table[3], table[4])
  ref = pca_init(text_matrix(), D)(jax.random.PRNGKey(1), (128, D))
  np.testing.assert_allclose(table[1:N + 1], np.asarray(ref)[1:N + 1], rtol=1e-5)
  assert abs(float(table[1:N + 1].std()) - 0.02) < 0.005  # the default init's scale


@pytest.mark.parametrize("mode,combine", [("text_adapter", "sum"), ("text_adapter", "gate"),
                                          ("text_only", "sum")])
def test_frozen_text_table_is_never_updated(mode, combine):
  mod, params = init(mode, combine=combine)
  frozen_before = np.asarray(params["frozen_text"])
  np.testing.assert_array_equal(frozen_before[:N + 1], text_matrix())
  ids = jnp.array([[1, 2, 3, 0]])

  def loss(p):
    return jnp.sum(mod.apply({"params": p}, ids) ** 2) + jnp.sum(
        mod.apply({"params": p}, method=mod.item_table))

  grads = jax.grad(loss)(params)
  assert float(jnp.abs(grads["frozen_text"]).max()) == 0.0
  assert float(jnp.abs(grads["adapter_in"]["kernel"]).max()) > 0.0
  cfg = config_lib.base_config().optim
  cfg.weight_decay = 0.5  # would shrink the table if it applied
  tx = optim.build_optimizer(cfg, total_steps=10)
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(np.asarray(params["frozen_text"]), frozen_before)


def test_text_only_scores_items_by_their_text_and_keeps_special_rows():
  mod, params = init("text_only", num_special=1)
  table = np.asarray(mod.apply({"params": params}, method=mod.table))
  np.testing.assert_allclose(table[3], table[5], rtol=1e-6)  # an item is its text
  np.testing.assert_allclose(table[0], np.asarray(params["special_rows"])[0])  # padding
  np.testing.assert_allclose(table[N + 1], np.asarray(params["special_rows"])[1])  # mask
  assert "embedding" not in params  # no id table: unseen items have a vector anyway


def test_bert4rec_with_text_and_the_config_check():
  model = BERT4Rec(num_items=N, max_len=6, embed_dim=D, num_heads=2, mlp_dim=16,
                   item_repr="text_adapter", item_text=HostArray(text_matrix()), text_dim=T)
  params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 6), jnp.int32))["params"]
  out = model.apply({"params": params}, jnp.array([[1, 2, N + 1, 0, 0, 0]]))
  assert np.isfinite(np.asarray(out)).all()
  cfg = config_lib.base_config()
  cfg.model.name, cfg.model.item_repr = "gru4rec", "text_only"
  with pytest.raises(ValueError, match="has only the 'id' representation"):
    config_lib.validate(cfg)


@pytest.mark.parametrize("mode,attributes", [  # ~30 s each: -m slow
    pytest.param("text_adapter", False, marks=pytest.mark.slow),
    pytest.param("text_only", False, marks=pytest.mark.slow),
    pytest.param("id", True, marks=pytest.mark.slow)])
def test_engine_run_with_side_information_and_restore(tmp_path, mode, attributes):
  pytest.importorskip("tokenizers")
  from seqrec_jax import text  # pylint: disable=import-outside-toplevel
  from seqrec_jax.infer.recommend import Recommender  # pylint: disable=import-outside-toplevel
  from seqrec_jax.train import engine, mle  # noqa: F401  pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  (tmp_path / "s3rec").mkdir()
  (tmp_path / "amazon-text").mkdir()
  lines = [" ".join(map(str, [u] + list(rng.integers(1, 21, size=8)))) for u in range(1, 61)]
  (tmp_path / "s3rec" / "Toys.txt").write_text("\n".join(lines) + "\n")
  (tmp_path / "amazon-text" / "Toys_item_text.tsv").write_text(
      "item_id\ttitle\n" + "".join(f"{i}\tthing number {i}\n" for i in range(1, 21)))
  cfg = config_lib.base_config()
  cfg.data.format, cfg.data.root, cfg.data.path = "s3rec", str(tmp_path), "s3rec/Toys.txt"
  cfg.data.cache_dir, cfg.data.dedup = str(tmp_path / "cache"), "none"
  (tmp_path / "s3rec" / "Toys_item2attributes.json").write_text(
      "{" + ", ".join(f'"{i}": [{1 + i % 3}, {4 + i % 2}]' for i in range(1, 21)) + "}")
  cfg.text.model = text.TINY
  cfg.model.item_attributes = attributes
  cfg.data.cold_items_frac = 0.2 if mode == "text_only" else 0.0
  cfg.model.update(item_repr=mode, max_len=8, embed_dim=16, mlp_dim=32, num_blocks=1)
  cfg.train.update(num_epochs=2, eval_every_epochs=1, batch_size=16, log_every_steps=2)
  cfg.eval.batch_size = 16
  report = engine.run(cfg, str(tmp_path / "run"))
  assert np.isfinite(report["test"]["ndcg@10"])
  if mode == "text_only":
    assert report["test"]["cold/users"] > 0  # cold targets, reported apart
  rec = Recommender.from_workdir(str(tmp_path / "run"))
  table = np.asarray(rec.model.apply({"params": rec.params}, method=lambda m: m.item_table()))
  assert table.shape[0] == 21 and np.isfinite(table).all()
  assert len(rec.recommend(history=[1, 2, 3], k=5)) == 5


def test_attribute_bag_adds_the_mean_attribute_embedding():
  attrs = np.zeros((N + 1, 3), np.int32)
  attrs[1] = [1, 2, 0]
  attrs[2] = [2, 0, 0]  # item 3 has none
  mod = ItemRepresentation(N, D, mode="id", attributes=HostArray(attrs), num_attributes=4)
  params = nn.meta.unbox(mod.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"])
  table = np.asarray(mod.apply({"params": params}, method=mod.item_table))
  emb, attr = np.asarray(params["embedding"]), np.asarray(params["attribute_embedding"]["embedding"])
  np.testing.assert_allclose(table[1], emb[1] + (attr[1] + attr[2]) / 2, rtol=1e-5)
  np.testing.assert_allclose(table[2], emb[2] + attr[2], rtol=1e-5)
  np.testing.assert_allclose(table[3], emb[3], rtol=1e-6)
  looked_up = np.asarray(mod.apply({"params": params}, jnp.array([[1, 2, 3]])))
  np.testing.assert_allclose(looked_up[0], table[1:4], rtol=1e-5)  # lookup == scoring rows


def test_id_dropout_drops_whole_id_rows_in_training_only():
  """With a dropout rng each row is either the adapter alone or adapter + id / (1 - p);
  without one (evaluation) every row is id + adapter; other modes refuse the option."""
  mod, params = init("text_adapter", id_dropout=0.5)
  full = np.asarray(mod.apply({"params": params}, method=mod.item_table))
  text_only = full - np.asarray(params["embedding"])[:N + 1]  # the adapter part
  train = np.asarray(mod.apply({"params": params}, method=mod.item_table,
                               rngs={"dropout": jax.random.PRNGKey(3)}))
  kept = np.isclose(train, text_only + 2 * (full - text_only), atol=1e-5).all(axis=1)
  dropped = np.isclose(train, text_only, atol=1e-5).all(axis=1)
  assert (kept | dropped).all() and kept[1:].any() and dropped[1:].any()
  cfg = config_lib.base_config()
  cfg.model.id_dropout = 0.3
  with pytest.raises(ValueError, match="model.id_dropout=0.3.*text_adapter"):
    config_lib.validate(cfg)
