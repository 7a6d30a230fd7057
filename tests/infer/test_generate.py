"""Generation: KV cache vs full recompute, beam/greedy/sampling, validity, exclusions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax.infer.generate import GenerateConfig, filter_logits, generate
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.models.seq2seq import Seq2Seq

NUM_ITEMS, L, STEPS = 25, 8, 4
HISTORY = np.array([[3, 4, 5, 0, 0, 0, 0, 0],
                    [1, 2, 3, 4, 5, 6, 7, 8],  # full window: SASRec keeps the latest L-STEPS+1
                    [9, 0, 0, 0, 0, 0, 0, 0],
                    [10, 11, 12, 13, 14, 15, 0, 0]], np.int32)


def _build(cls):
  model = cls(num_items=NUM_ITEMS, max_len=L, embed_dim=16, num_blocks=2, num_heads=2,
              mlp_dim=32)
  params = model.init({"params": jax.random.PRNGKey(1)}, jnp.zeros((1, L), jnp.int32))["params"]
  # Larger item embeddings make the next-item distribution peaked and ties impossible.
  emb = params["item_embedding"]["embedding"]
  params["item_embedding"]["embedding"] = emb.replace_boxed(emb.unbox() * 50.0)
  if "item_bias" in params:  # a bias that matters
    bias = params["item_bias"]
    params["item_bias"] = bias.replace_boxed(5.0 * jax.random.normal(jax.random.PRNGKey(2),
                                                                     bias.unbox().shape))
  return model, params


@pytest.fixture(scope="module",
                params=[SASRec, functools.partial(SASRec, input_in_state=False),
                        functools.partial(SASRec, input_in_state=False, output_bias=True),
                        Seq2Seq],
                ids=["sasrec", "sasrec_blocks_state", "sasrec_output_bias", "seq2seq"])
def built(request):
  return _build(request.param)


def _logits(model, params, state):
  table = model.apply({"params": params}, method=model.item_table)
  logits = np.array(state @ table.T)
  logits[:, 0] = -np.inf
  return logits


def _greedy_by_full_recompute(model, params, history, steps):
  """Reference: rebuild the whole input at every step through the training-path call."""
  out = np.zeros((history.shape[0], steps), np.int32)
  encode = jax.jit(lambda p, ids: model.apply({"params": p}, ids, method=model.encode))
  call = jax.jit(lambda p, h, d: model.apply({"params": p}, h, dec_inputs=d))
  if isinstance(model, SASRec):
    window = np.zeros_like(history)
    for b, row in enumerate(history):
      real = row[row > 0][-(L - steps + 1):]
      window[b, :real.size] = real
    for t in range(steps):
      state = encode(params, jnp.asarray(window))
      out[:, t] = _logits(model, params, state).argmax(-1)
      for b in range(window.shape[0] if t < steps - 1 else 0):
        window[b, (window[b] > 0).sum()] = out[b, t]
  else:
    dec = np.full((history.shape[0], 1), model.bos_id, np.int32)
    for t in range(steps):
      hidden = call(params, jnp.asarray(history), jnp.asarray(dec))
      out[:, t] = _logits(model, params, hidden[:, -1]).argmax(-1)
      dec = np.concatenate([dec, out[:, t:t + 1]], axis=1)
  return out


def test_cached_greedy_equals_full_recompute(built):
  model, params = built
  got = generate(model, params, HISTORY, GenerateConfig(steps=STEPS, method="greedy"))
  ref = _greedy_by_full_recompute(model, params, HISTORY, STEPS)
  np.testing.assert_array_equal(got.items[:, 0], ref)


def test_cached_states_equal_prefix_recompute_at_every_step(built):
  model, params = built
  gen = jnp.asarray(np.random.default_rng(0).integers(1, NUM_ITEMS + 1, (4, STEPS)), jnp.int32)
  v = {"params": params}
  prefill = jax.jit(lambda h: model.apply(v, h, STEPS, method=model.prefill))
  step = jax.jit(lambda tok, c: model.apply(v, tok, c, method=model.decode_step))
  prefix = jax.jit(lambda h, g, t: model.apply(v, h, g, t, STEPS, method=model.prefix_state))
  state, cache = prefill(jnp.asarray(HISTORY))
  for t in range(STEPS):
    np.testing.assert_allclose(state, prefix(jnp.asarray(HISTORY), gen, t), rtol=1e-4, atol=1e-4)
    if t < STEPS - 1:
      state, cache = step(gen[:, t], cache)


def test_cache_and_no_cache_give_the_same_beams(built):
  model, params = built
  cfg = GenerateConfig(steps=STEPS, method="beam", beams=3, no_repeat_generated=True)
  a = generate(model, params, HISTORY, cfg)
  b = generate(model, params, HISTORY, GenerateConfig(**{**cfg.__dict__, "use_cache": False}))
  np.testing.assert_array_equal(a.items, b.items)
  np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-3)


def test_beam_width_one_equals_greedy(built):
  model, params = built
  beam = generate(model, params, HISTORY, GenerateConfig(steps=STEPS, method="beam", beams=1))
  greedy = generate(model, params, HISTORY, GenerateConfig(steps=STEPS, method="greedy"))
  np.testing.assert_array_equal(beam.items, greedy.items)
  np.testing.assert_allclose(beam.scores, greedy.scores, rtol=1e-5)


def test_wide_beam_finds_the_best_two_item_sequence(built):
  model, params = built
  history = HISTORY[:2]
  out = generate(model, params, history, GenerateConfig(steps=2, beams=NUM_ITEMS))
  # Brute force over all NUM_ITEMS^2 continuations with the uncached prefix state.
  prefix = jax.jit(lambda g, t: model.apply({"params": params}, jnp.asarray(history), g, t, 2,
                                            method=model.prefix_state))
  logp = lambda state: jax.nn.log_softmax(jnp.asarray(_logits(model, params, state)), -1)
  first = logp(prefix(jnp.zeros((2, 2), jnp.int32), 0))
  best = np.full(2, -np.inf)
  for i in range(1, NUM_ITEMS + 1):
    second = logp(prefix(jnp.full((2, 2), i, jnp.int32), 1))
    best = np.maximum(best, np.asarray(first[:, i] + second[:, 1:].max(-1)))
  np.testing.assert_allclose(out.scores[:, 0], best, rtol=1e-4)
  assert (np.diff(np.asarray(out.scores), axis=1) <= 1e-6).all()  # sorted, best first


@pytest.mark.parametrize("cfg", [
    GenerateConfig(steps=STEPS, method="beam", beams=4),
    GenerateConfig(steps=STEPS, method="sample", beams=3, temperature=2.0),
    GenerateConfig(steps=STEPS, method="sample", beams=3, top_k=3, top_p=0.5,
                   no_repeat_history=True, no_repeat_generated=True),
], ids=["beam", "sample", "sample-filtered-no-repeat"])
def test_generated_ids_are_valid_items(built, cfg):
  model, params = built
  out = generate(model, params, HISTORY, cfg, rng=jax.random.PRNGKey(3))
  items = np.asarray(out.items)
  assert items.shape == (4, cfg.width, STEPS)
  assert ((items >= 1) & (items <= NUM_ITEMS)).all()
  assert np.isfinite(np.asarray(out.scores)).all()
  if cfg.no_repeat_history:
    for b in range(4):
      assert not set(items[b].ravel()) & set(HISTORY[b][HISTORY[b] > 0])
      for seq in items[b]:
        assert len(set(seq)) == STEPS


def test_exclusions_leave_only_valid_items_even_when_catalogue_runs_out():
  model, params = _build(SASRec)
  history = np.arange(1, L + 1)[None].astype(np.int32)
  seen = np.arange(1, NUM_ITEMS - 1)[None].astype(np.int32)  # all but 2 items seen
  out = generate(model, params, history, GenerateConfig(
      steps=STEPS, method="greedy", no_repeat_history=True, no_repeat_generated=True), seen=seen)
  items = np.asarray(out.items)[0, 0]
  assert ((items >= 1) & (items <= NUM_ITEMS)).all()  # never padding, never the BOS/mask row
  assert set(items[:2]) == {NUM_ITEMS - 1, NUM_ITEMS}  # the two allowed ones come first


def test_sampling_is_deterministic_for_a_key(built):
  model, params = built
  cfg = GenerateConfig(steps=STEPS, method="sample", beams=4, temperature=1.5)
  a = generate(model, params, HISTORY, cfg, rng=jax.random.PRNGKey(7))
  b = generate(model, params, HISTORY, cfg, rng=jax.random.PRNGKey(7))
  c = generate(model, params, HISTORY, cfg, rng=jax.random.PRNGKey(8))
  np.testing.assert_array_equal(a.items, b.items)
  assert not np.array_equal(a.items, c.items)
  top1 = generate(model, params, HISTORY, GenerateConfig(steps=STEPS, method="sample", beams=1,
                                                         top_k=1), rng=jax.random.PRNGKey(7))
  greedy = generate(model, params, HISTORY, GenerateConfig(steps=STEPS, method="greedy"))
  np.testing.assert_array_equal(top1.items, greedy.items)


def test_filter_logits_top_k_and_top_p():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  assert np.isfinite(filter_logits(logits, top_k=2)).sum() == 2
  np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.7))[0],
                                [True, True, False, False])
  np.testing.assert_array_equal(np.isfinite(filter_logits(logits, top_p=0.1))[0],
                                [True, False, False, False])


def test_config_rejects_bad_values():
  for bad in [dict(method="nucleus"), dict(steps=0), dict(beams=NUM_ITEMS + 1),
              dict(temperature=0.0), dict(top_p=0.0)]:
    with pytest.raises(ValueError):
      GenerateConfig(**bad).validate(NUM_ITEMS)
