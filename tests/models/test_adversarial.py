"""GAN pieces: losses against hand-computed values, REINFORCE unbiasedness, straight-through
Gumbel-softmax, and the Generator / Discriminator modules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import losses
from seqrec_jax.models.adversarial import Discriminator, Generator
from seqrec_jax.models.sasrec import SASRec

V, L = 30, 10


def _log_sigmoid(x):
  return -np.log1p(np.exp(-np.asarray(x, np.float64)))


# ---- losses ---------------------------------------------------------------------------------
def test_discriminator_and_generator_losses_match_formulas():
  real = jnp.array([0.0, 2.0, -1.0])
  fake = jnp.array([-1.0, 1.0, 3.0])
  real_w = jnp.array([1.0, 1.0, 0.0])  # the third real example is padding
  fake_w = jnp.array([1.0, 1.0, 1.0])
  # by hand: D(x) = sigmoid(logit); L_D = -(mean log D(real) + mean log(1 - D(fake)))
  log_d_real = [np.log(0.5), np.log(1 / (1 + np.exp(-2.0)))]
  log_1m_d_fake = [np.log(1 - 1 / (1 + np.exp(1.0))), np.log(1 - 1 / (1 + np.exp(-1.0))),
                   np.log(1 - 1 / (1 + np.exp(-3.0)))]
  expected_d = -(np.mean(log_d_real) + np.mean(log_1m_d_fake))
  np.testing.assert_allclose(losses.gan_discriminator_loss(real, fake, real_w, fake_w),
                             expected_d, rtol=1e-6)
  np.testing.assert_allclose(expected_d, 0.6931472 / 2 + 0.1269280 / 2 + (0.3132617 + 1.3132617
                                                                           + 3.0485874) / 3,
                             rtol=1e-6)
  # non-saturating L_G = -mean log D(G(z))
  expected_g = -np.mean(_log_sigmoid(np.array([-1.0, 1.0, 3.0])))
  np.testing.assert_allclose(losses.gan_generator_loss(fake, fake_w), expected_g, rtol=1e-6)
  np.testing.assert_allclose(expected_g, (1.3132617 + 0.3132617 + 0.0485874) / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.gan_reward(fake), _log_sigmoid([-1.0, 1.0, 3.0]), rtol=1e-6)


def test_reinforce_loss_value_and_gradient_formula():
  logp = jnp.array([-1.0, -2.0, -0.5])
  reward = jnp.array([-0.2, -1.0, -0.7])
  w = jnp.array([1.0, 1.0, 0.0])
  b = -0.5
  value, grad = jax.value_and_grad(losses.reinforce_loss)(logp, reward, b, w)
  # -mean((r - b) * logp) over weighted rows = -((0.3 * -1) + (-0.5 * -2)) / 2
  np.testing.assert_allclose(value, -(0.3 * -1.0 + -0.5 * -2.0) / 2, rtol=1e-6)
  np.testing.assert_allclose(grad, [-0.3 / 2, 0.5 / 2, 0.0], rtol=1e-6)
  # rewards and baseline carry no gradient
  g_r = jax.grad(losses.reinforce_loss, argnums=(1, 2))(logp, reward, jnp.float32(b), w)
  assert all(float(jnp.abs(g).sum()) == 0.0 for g in g_r)


@pytest.mark.parametrize("baseline", [0.0, 0.8])
def test_reinforce_gradient_is_unbiased_on_a_toy_problem(baseline):
  theta = jnp.array([0.5, -0.3, 1.2, 0.0, -1.0, 0.3])
  reward = jnp.array([1.0, -0.5, 0.2, 2.0, 0.7, -1.2])
  exact = jax.grad(lambda t: -jnp.sum(jax.nn.softmax(t) * reward))(theta)  # grad of -E[r]

  def estimate(t, key):
    samples = jax.random.categorical(key, jax.lax.stop_gradient(t), shape=(200_000,))
    logp = jax.nn.log_softmax(t)[samples]
    return losses.reinforce_loss(logp, reward[samples], baseline, jnp.ones_like(logp))

  # the surrogate's gradient is the mean of 200k per-sample score-function gradients
  mc = jax.jit(jax.grad(estimate))(theta, jax.random.PRNGKey(0))
  np.testing.assert_allclose(mc, exact, atol=0.01)
  assert float(jnp.abs(exact).max()) > 0.2  # and the target is not trivially ~0


def test_gumbel_straight_through_is_one_hot_forward_and_finite_backward():
  logits = jnp.array([[0.1, 2.0, -1.0, 0.5, -1e9], [3.0, 0.0, 0.0, 0.0, -1e9]])
  y, soft = losses.gumbel_softmax_st(jax.random.PRNGKey(0), logits, 0.5)
  assert set(np.unique(np.asarray(y))) <= {0.0, 1.0}
  np.testing.assert_array_equal(np.asarray(y).sum(-1), [1.0, 1.0])
  np.testing.assert_array_equal(np.argmax(y, -1), np.argmax(soft, -1))
  assert np.all(np.asarray(y)[:, -1] == 0)  # a masked class is never drawn
  c = jnp.arange(5.0)
  f = lambda lg: jnp.sum(losses.gumbel_softmax_st(jax.random.PRNGKey(0), lg, 0.5)[0] * c)
  f_soft = lambda lg: jnp.sum(losses.gumbel_softmax_st(jax.random.PRNGKey(0), lg, 0.5)[1] * c)
  g = jax.grad(f)(logits)
  assert np.all(np.isfinite(g)) and float(jnp.abs(g).sum()) > 0
  np.testing.assert_allclose(g, jax.grad(f_soft)(logits), rtol=1e-6)  # gradient of the soft path
  # the forward draws follow softmax(logits)
  keys = jax.random.split(jax.random.PRNGKey(1), 20_000)
  draws = jax.vmap(lambda k: losses.gumbel_softmax_st(k, logits[0, :4], 1.0)[0])(keys)
  np.testing.assert_allclose(draws.mean(0), jax.nn.softmax(logits[0, :4]), atol=0.015)


def test_categorical_entropy():
  np.testing.assert_allclose(losses.categorical_entropy(jnp.zeros((2, 8))), [np.log(8)] * 2,
                             rtol=1e-6)
  assert float(losses.categorical_entropy(jnp.array([0.0, -1e9, -1e9]))) == pytest.approx(0.0)


# ---- modules --------------------------------------------------------------------------------
def _base():
  return SASRec(num_items=V, max_len=L, embed_dim=16, num_blocks=1, num_heads=2, mlp_dim=32)


def _ids():
  return jnp.array([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0], list(range(1, 11))])


@pytest.mark.parametrize("mode", ["add", "concat"])
def test_generator_is_the_base_model_plus_noise(mode):
  gen = Generator(base=_base(), features=16, noise_dim=4, noise_mode=mode)
  params = gen.init({"params": jax.random.PRNGKey(0)}, _ids(), method=Generator.init_all)["params"]
  assert set(params) == {"base", "noise", "value"}
  base_params = _base().init({"params": jax.random.PRNGKey(0)}, _ids())["params"]
  assert jax.tree.structure(params["base"]) == jax.tree.structure(base_params)
  ids, z = _ids(), jax.random.normal(jax.random.PRNGKey(1), (2, 4))
  apply = jax.jit(lambda p, method, *a: gen.apply({"params": p}, *a, method=method),
                  static_argnums=1)
  state = apply(params, Generator.encode, ids)
  np.testing.assert_allclose(state, _base().apply({"params": params["base"]}, ids,
                                                  method=SASRec.encode), rtol=1e-5, atol=1e-5)
  # the noise starts switched off (adversarial training starts from the MLE model) ...
  np.testing.assert_allclose(apply(params, Generator.noisy_encode, ids, z), state, atol=1e-6)
  # ... and acts once its projection is non-zero
  noisy = jax.tree.map(lambda x: x + 0.1, params)
  a = apply(noisy, Generator.noisy_encode, ids, z)
  b = apply(noisy, Generator.noisy_encode, ids, -z)
  assert a.shape == (2, 16) and not np.allclose(a, b)
  hidden = apply(noisy, Generator.noisy_hidden, ids, z)
  assert hidden.shape == (2, L, 16)
  np.testing.assert_allclose(hidden[1, -1], a[1], rtol=1e-5, atol=1e-6)
  assert apply(params, Generator.item_table).shape == (V + 1, 16)
  assert apply(params, Generator.baseline, state).shape == (2,)


@pytest.mark.parametrize("head", ["cls", "dot"])
def test_discriminator_classifies_history_and_continuation(head):
  disc = Discriminator(num_items=V, max_len=L + 3, head=head, embed_dim=16, mlp_dim=32,
                       num_heads=2)
  ids = _ids()
  params = disc.init({"params": jax.random.PRNGKey(0)}, ids,
                     method=Discriminator.init_all)["params"]
  cont = jnp.array([[7, 8, 9], [11, 12, 0]])
  w = (cont > 0).astype(jnp.float32)
  classify = jax.jit(lambda p, c, ww: disc.apply({"params": p}, ids, c, ww,
                                                 method=Discriminator.classify))
  logits = classify(params, cont, w)
  assert logits.shape == (2,) and np.all(np.isfinite(logits))
  # one-hot rows give the same logits as ids (the Gumbel path reads one-hots)
  np.testing.assert_allclose(classify(params, jax.nn.one_hot(cont, V + 1) * w[..., None], w),
                             logits, rtol=1e-5, atol=1e-6)
  # slots with weight 0 are ignored whatever they hold
  np.testing.assert_allclose(classify(params, cont.at[1, 2].set(5), w), logits, rtol=1e-5,
                             atol=1e-6)
  assert not np.allclose(classify(params, cont.at[0, 1].set(5), w), logits)
  grad = jax.grad(lambda oh: classify(params, oh, w).sum())(jax.nn.one_hot(cont, V + 1))
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0
  if head == "dot":  # a recommender: one-item continuation logit = encode(history) . e_item
    state = disc.apply({"params": params}, ids, method=Discriminator.encode)
    table = disc.apply({"params": params}, method=Discriminator.item_table)
    assert table.shape == (V + 1, 16)
    np.testing.assert_allclose(classify(params, cont[:, :1], w[:, :1]),
                               jnp.sum(state * table[cont[:, 0]], -1), rtol=1e-5, atol=1e-6)
