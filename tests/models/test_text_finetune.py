"""text_finetune: the top text-encoder layers trained on the recommendation loss.

The first cached table is the full encoder's output; a refresh recomputes exactly what a
fresh row computes; gradients reach the top layers and never the frozen token states;
an engine run trains the layers, refreshes the table before it validates (so the saved
best model scores with the encoder it holds) and restores without the text inputs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import config as config_lib

pytest.importorskip("tokenizers")

from seqrec_jax import text, text_states  # noqa: E402
from seqrec_jax.models.text_finetune import FinetunedText  # noqa: E402

ITEMS = 20


def write_data(root) -> None:
  rng = np.random.default_rng(0)
  (root / "s3rec").mkdir()
  (root / "amazon-text").mkdir()
  lines = [" ".join(map(str, [u] + list(rng.integers(1, ITEMS + 1, size=8))))
           for u in range(1, 61)]
  (root / "s3rec" / "Toys.txt").write_text("\n".join(lines) + "\n")
  words = ["red", "car", "doll", "ball", "blue", "train", "puzzle", "kit", "set", "game"]
  (root / "amazon-text" / "Toys_item_text.tsv").write_text("item_id\ttitle\n" + "".join(
      f"{i}\t{words[i % 10]} {words[(3 * i) % 10]} thing number {i}\n"
      for i in range(1, ITEMS + 1)))


def base_cfg(root):
  cfg = config_lib.base_config()
  cfg.data.format, cfg.data.root, cfg.data.path = "s3rec", str(root), "s3rec/Toys.txt"
  cfg.data.cache_dir, cfg.data.dedup = str(root / "cache"), "none"
  cfg.text.model = text.TINY
  cfg.model.update(item_repr="text_finetune", max_len=8, embed_dim=16, mlp_dim=32,
                   num_blocks=1, finetune_layers=1, finetune_tokens=8, finetune_items=8)
  return cfg


@pytest.fixture(name="prepared")
def fixture_prepared(tmp_path):
  write_data(tmp_path)
  cfg = base_cfg(tmp_path)
  from seqrec_jax.data.load import load_dataset  # pylint: disable=import-outside-toplevel
  dataset = load_dataset(cfg.data)
  spec = text_states.finetune_inputs(cfg, dataset)
  module = FinetunedText(spec, rows=128, finetune_items=8)
  params = nn.meta.unbox(module.init({"params": jax.random.PRNGKey(0)},
                                     method=lambda m: m.cached())["params"])
  return cfg, dataset, spec, module, params


def test_first_cache_is_the_full_encoder_output(prepared):
  cfg, dataset, spec, module, params = prepared
  encoder = text.TextEncoder(text.model_spec(cfg.text.model), max_tokens=8)
  full = encoder.encode(text.plan(cfg, dataset).texts[1:])  # [n, H]
  cache = np.asarray(params["frozen_text"])[1:ITEMS + 1]
  cos = (cache * full).sum(1) / np.linalg.norm(cache, axis=1) / np.linalg.norm(full, axis=1)
  assert cos.min() > 0.999  # the lower layers' states are kept in bfloat16
  assert not np.asarray(params["frozen_text"])[ITEMS + 1:].any()  # rows past the items
  np.testing.assert_allclose(np.asarray(module.apply({"params": params},
                                                     method=lambda m: m.refresh())),
                             np.asarray(params["frozen_text"]), atol=2e-6)
  assert spec.mask.sum(1).max() <= 8 and spec.mask[0].sum() == 0


def test_fresh_rows_match_a_refresh_and_gradients_reach_only_the_top_layers(prepared):
  _, _, _, module, params = prepared
  moved = jax.tree.map(lambda p: p, params)
  moved["text_layers"] = jax.tree.map(lambda w: w * 1.1 + 0.01, params["text_layers"])
  items = jnp.array([[3, 5, 0, 7], [9, 3, 11, 0]])  # 0: padding targets
  rngs = {"dropout": jax.random.PRNGKey(4)}
  table = np.asarray(module.apply({"params": moved}, items, rngs=rngs,
                                  method=lambda m, i: m.with_fresh(i)))
  rows = np.asarray(module.apply({"params": moved}, items, rngs=rngs,
                                 method=lambda m, i: m.fresh_rows(i)))
  assert set(rows.tolist()) == {0, 3, 5, 7, 9, 11}  # every real target (8 slots), then padding
  refreshed = np.asarray(module.apply({"params": moved}, method=lambda m: m.refresh()))
  old = np.asarray(params["frozen_text"])
  for r in range(1, ITEMS + 1):
    np.testing.assert_allclose(table[r], refreshed[r] if r in rows else old[r], atol=2e-6)
  assert not np.allclose(refreshed[3], old[3])  # the moved layers change the vectors

  def loss(p):
    t = module.apply({"params": p}, items, rngs=rngs, method=lambda m, i: m.with_fresh(i))
    return jnp.sum(t * jnp.arange(t.shape[1]))
  grads = jax.grad(loss)(params)
  assert float(max(jnp.abs(g).max() for g in jax.tree.leaves(grads["text_layers"]))) > 0
  for name in ("frozen_text", "frozen_hidden", "frozen_mask"):
    assert float(jnp.abs(grads[name].astype(jnp.float32)).max()) == 0.0


def test_config_refuses_what_text_finetune_cannot_do(tmp_path):
  write_data(tmp_path)
  cfg = base_cfg(tmp_path)
  config_lib.validate(cfg)
  cfg.model.finetune_layers = 3  # the tiny encoder has 2
  with pytest.raises(ValueError, match="finetune_layers=3"):
    text_states.finetune_shapes(cfg)
  cfg = base_cfg(tmp_path)
  cfg.model.name = "gru4rec"
  with pytest.raises(ValueError, match="has only the 'id' representation"):
    config_lib.validate(cfg)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_engine_trains_the_layers_and_refreshes_before_validation(tmp_path, ema_decay):
  """With `optim.ema_decay` the saved model is the average, and its table must come
  from the average's encoder layers, not from the raw ones the epoch end refreshed."""
  from seqrec_jax.infer.recommend import Recommender  # pylint: disable=import-outside-toplevel
  from seqrec_jax.train import engine, mle  # noqa: F401  pylint: disable=import-outside-toplevel
  write_data(tmp_path)
  cfg = base_cfg(tmp_path)
  cfg.train.update(num_epochs=2, eval_every_epochs=1, batch_size=16, log_every_steps=2)
  cfg.eval.batch_size = 16
  cfg.optim.ema_decay = ema_decay
  report = engine.run(cfg, str(tmp_path / "run"))
  assert np.isfinite(report["test"]["ndcg@10"])
  rec = Recommender.from_workdir(str(tmp_path / "run"))  # shapes only: no text encoding
  p = rec.params["item_embedding"]["text_finetune"]
  from seqrec_jax.data.load import load_dataset  # pylint: disable=import-outside-toplevel
  start = text_states.finetune_inputs(cfg, load_dataset(cfg.data))
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), p["text_layers"], start.top)
  assert max(jax.tree.leaves(moved)) > 0  # the top layer was trained
  np.testing.assert_array_equal(np.asarray(p["frozen_mask"])[:ITEMS + 1], start.mask)
  refreshed = rec.model.apply({"params": rec.params},
                              method=lambda m: m.item_embedding.refresh_text())
  np.testing.assert_allclose(np.asarray(p["frozen_text"]), np.asarray(refreshed), atol=2e-6)
  assert len(rec.recommend(history=[1, 2, 3], k=5)) == 5
