"""Adversarial training: the jitted D/G step on smoke-sized synthetic data, its
checkpoints, its sharding, the layouts, the config, and the whole two-phase run."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import gan_synthetic
from seqrec_jax import config as config_lib
from seqrec_jax import parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import leave_one_out
from seqrec_jax.data.load import load_dataset
from seqrec_jax.models.adversarial import Discriminator, Generator
from seqrec_jax import checkpoint
from seqrec_jax.train import adversarial, gan_steps, optim, tasks
from seqrec_jax.train.state import abstract_state

STEPS = 80


def smoke_config(**gan):
  """configs/default.py:smoke-sized data and models, one-block G, continuation of 1."""
  cfg = gan_synthetic.get_config("smoke")
  cfg.model.num_blocks = 1
  cfg.model.dropout = cfg.model.emb_dropout = cfg.gan.d_dropout = 0.0  # fewer ops to compile
  cfg.gan.gen_len = 1
  cfg.gan.mle_weight = 0.0
  cfg.gan.d_lr = 5e-3
  for key, value in gan.items():
    cfg.gan[key] = value
  return cfg


class Run:
  """A GAN state, its jitted step and a batch stream, built as the loop builds them."""

  def __init__(self, cfg, mesh, total_steps=STEPS):
    dataset = load_dataset(cfg.data)
    split = leave_one_out(dataset)
    base, self.gen, self.disc = adversarial.build_models(cfg, dataset.num_items)
    task = tasks.build_task(cfg, base, split)
    self.settings = gan_steps.GANSettings.from_config(cfg.gan, dataset.num_items)
    mle = self.settings.mle_weight > 0
    tx_g = optim.build_optimizer(adversarial._optim_config(cfg, cfg.gan.g_lr), total_steps)
    tx_d = optim.build_optimizer(adversarial._optim_config(cfg, cfg.gan.d_lr), total_steps)
    dummy = np.zeros((1, cfg.model.max_len), np.int32)
    init_g = lambda r: self.gen.init({"params": r}, dummy, method=Generator.init_all)["params"]
    init_d = lambda r: self.disc.init({"params": r}, dummy, method=Discriminator.init_all)["params"]
    self.state, self.state_sh = gan_steps.create_gan_state(init_g, init_d, tx_g, tx_d, 0, mesh,
                                                           dataset.num_items)
    self.step = gan_steps.jit_gan_step(self.gen, self.disc, self.settings, tx_g, tx_d,
                                       self.state_sh, mesh, task.loss_fn if mle else None)
    example = adversarial.GANExample(pipeline.CausalExample(cfg.model.max_len),
                                     task.example_fn if mle else None)
    self.batches = iter(pipeline.train_dataset(task.source, example,
                                               global_batch=cfg.train.batch_size, seed=0))
    self.mesh = mesh

  def run(self, n):
    history = []
    for _ in range(n):
      batch = parallel.to_global(next(self.batches), parallel.batch_sharding(self.mesh))
      self.state, m = self.step(self.state, batch)
      history.append({k: float(v) for k, v in jax.device_get(m).items()})
    return history


def _one_device_mesh():
  return parallel.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1])


def _check_run(history, settings):
  for m in history:
    assert all(np.isfinite(v) for v in m.values()), m
  late = history[-20:]
  d_acc = np.mean([(m["d_acc_real"] + m["d_acc_fake"]) / 2 for m in late])
  assert d_acc > 0.6, f"D accuracy {d_acc:.3f} did not move off 0.5"
  assert 0 < history[-1]["sample_coverage"] <= 1
  assert 0 < history[-1]["entropy"] <= np.log(settings.num_items) + 1e-4


@pytest.fixture(scope="module")
def reinforce_run():
  run = Run(smoke_config(estimator="reinforce", baseline="ema"), _one_device_mesh())
  return run, run.run(STEPS)


def test_short_reinforce_run_stays_finite_and_d_learns(reinforce_run):
  run, history = reinforce_run
  _check_run(history, run.settings)
  assert history[-1]["baseline"] != history[0]["baseline"]  # the moving average moves
  counts = np.asarray(run.state.sample_counts)
  assert counts[0] == 0 and counts.sum() == STEPS * 32  # one sampled item per row and step
  assert int(run.state.g.step) == int(run.state.d.step) == STEPS


@pytest.mark.parametrize("gan", [
    dict(estimator="gumbel", d_head="cls", gen_len=2),
    dict(estimator="reinforce", baseline="learned", layout="positions", d_head="dot",
         num_positions=4, d_steps=3, g_steps=2, mle_weight=0.5),
], ids=["gumbel-continuation", "reinforce-learned-positions"])
@pytest.mark.slow  # ~30 s each; the REINFORCE run stays in the default suite
def test_other_estimators_and_layouts_stay_finite_and_d_learns(gan):
  run = Run(smoke_config(**gan), _one_device_mesh())
  history = run.run(STEPS)
  _check_run(history, run.settings)
  assert int(run.state.d.step) == STEPS * run.settings.d_steps
  assert int(run.state.g.step) == STEPS * run.settings.g_steps
  if gan["estimator"] == "gumbel":
    assert history[-1]["tau"] < history[0]["tau"]
  else:
    assert history[-1]["baseline_loss"] > 0 and history[-1]["mle_loss"] > 0


def test_checkpoint_round_trip_restores_both_models_and_optimizers(reinforce_run, tmp_path):
  run, _ = reinforce_run
  ckpts = checkpoint.Checkpoints(str(tmp_path))
  ckpts.save(STEPS, run.state, run.batches, {"best_value": 0.5})
  ckpts.wait()
  ckpts.close()
  fresh = Run(smoke_config(estimator="reinforce", baseline="ema"), _one_device_mesh())
  assert not np.allclose(fresh.state.d.params["item_embedding"]["embedding"],
                         run.state.d.params["item_embedding"]["embedding"])
  ckpts = checkpoint.Checkpoints(str(tmp_path))
  restored, meta = ckpts.restore_latest(abstract_state(fresh.state_sh, fresh.state),
                                        fresh.batches)
  ckpts.close()
  assert meta == {"best_value": 0.5}
  for part in ("g", "d"):
    for field in ("params", "opt_state", "step"):
      a, b = getattr(getattr(run.state, part), field), getattr(getattr(restored, part), field)
      assert jax.tree.structure(a) == jax.tree.structure(b)
      jax.tree.map(np.testing.assert_array_equal, a, b)
  for field in ("step", "baseline", "sample_counts", "rng"):
    np.testing.assert_array_equal(getattr(run.state, field), getattr(restored, field))
  # the data iterator resumes where it was saved
  np.testing.assert_array_equal(next(run.batches)["gan"]["inputs"],
                                next(fresh.batches)["gan"]["inputs"])


@pytest.mark.slow
def test_step_on_eight_devices_matches_one_device():
  cfg = smoke_config(estimator="gumbel", gen_len=2)
  one = Run(cfg, _one_device_mesh()).run(3)
  mesh = parallel.make_mesh((4, 2), ("data", "model"), devices=jax.devices()[:8])
  eight = Run(cfg, mesh).run(3)
  for a, b in zip(one, eight):
    for key in a:
      np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-5, err_msg=key)


# ---- layouts ----------------------------------------------------------------------------------
def test_append_items_packs_left_and_drops_the_oldest_when_full():
  ids = jnp.array([[3, 4, 0, 0], [1, 2, 3, 4]])
  np.testing.assert_array_equal(gan_steps.append_items(ids, jnp.array([9, 8])),
                                [[3, 4, 9, 0], [2, 3, 4, 8]])


def test_split_continuation_cuts_history_and_the_next_items():
  seq = np.array([5, 6, 7, 8, 9])
  ex = pipeline.CausalExample(max_len=6)(seq)
  batch = {k: jnp.asarray(v)[None].repeat(64, 0) for k, v in ex.items()}
  history, real, w = gan_steps.split_continuation(batch, jax.random.PRNGKey(0), 2)
  cuts = set()
  for h, r, ww in zip(np.asarray(history), np.asarray(real), np.asarray(w)):
    c = int((h > 0).sum())
    cuts.add(c)
    np.testing.assert_array_equal(h[:c], seq[:c])
    np.testing.assert_array_equal(r, seq[c:c + 2])  # always a full continuation here
    np.testing.assert_array_equal(ww, [1, 1])
  assert cuts == {1, 2, 3}  # random cuts, every one leaving 2 items to continue
  history, real, w = gan_steps.split_continuation(batch, jax.random.PRNGKey(0), 6)
  np.testing.assert_array_equal(np.asarray(history)[0, :2], [5, 0])  # too short: cut at 1
  np.testing.assert_array_equal(np.asarray(real)[0], [6, 7, 8, 9, 0, 0])
  np.testing.assert_array_equal(np.asarray(w)[0], [1, 1, 1, 1, 0, 0])


def test_sample_items_draws_from_the_softmax_and_never_padding():
  logits = jnp.array([gan_steps.NEG, 1.0, 0.0, 2.0, -1.0])
  draws = gan_steps.sample_items(jax.random.PRNGKey(0), jnp.broadcast_to(logits, (50_000, 5)))
  freq = np.bincount(np.asarray(draws), minlength=5) / draws.size
  assert freq[0] == 0
  np.testing.assert_allclose(freq, jax.nn.softmax(logits), atol=0.01)


def test_select_positions_prefers_real_positions():
  weights = jnp.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], jnp.float32)
  pos = np.asarray(gan_steps.select_positions(jax.random.PRNGKey(0), weights, 3))
  assert set(pos[0]) == {0, 1, 2} and len(set(pos[1])) == 3
  assert gan_steps.select_positions(jax.random.PRNGKey(0), weights, 0).shape == (2, 6)


# ---- config -----------------------------------------------------------------------------------
def test_gan_config_is_validated_and_locked():
  cfg = gan_synthetic.get_config("smoke")
  config_lib.validate_gan(cfg)
  for key, value in [("estimator", "score"), ("recommender", "discriminator"),
                     ("layout", "positions"), ("d_steps", 0), ("baseline_decay", 1.0)]:
    bad = ml_collections.ConfigDict(cfg.to_dict())
    bad.gan[key] = value
    with pytest.raises(ValueError, match=f"gan"):
      config_lib.validate_gan(bad)
  elec = gan_synthetic.get_config("smoke,elec,gumbel,learned")
  config_lib.validate_gan(elec)
  assert (elec.gan.layout, elec.gan.d_head, elec.gan.recommender, elec.gan.estimator,
          elec.gan.baseline) == ("positions", "dot", "discriminator", "gumbel", "learned")
  cfg.lock()
  with pytest.raises(AttributeError):
    cfg.gan.num_generators = 2
  with pytest.raises(ValueError, match="unknown variant"):
    gan_synthetic.get_config("smoke,fast")


# ---- the whole run ------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_phase_run_resumes_to_the_same_result(tmp_path):
  cfg = gan_synthetic.get_config("smoke")
  straight = adversarial.train_gan(cfg, str(tmp_path / "a"))
  for name in ("ndcg@10", "hr@10", "excl/ndcg@10"):
    assert np.isfinite(straight["test"][name]) and np.isfinite(straight["pretrain"]["test"][name])
  records = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
  assert [r["kind"] for r in records].count("test") == 1
  train = [r for r in records if r["kind"] == "train"]
  for key in ("d_acc_real", "d_acc_fake", "reward", "entropy", "coverage"):
    assert all(np.isfinite(r[key]) for r in train)
  assert json.load(open(tmp_path / "a" / "final.json"))["best_step"] == straight["best_step"]

  sliced = gan_synthetic.get_config("smoke")
  sliced.train.max_steps_this_run = 6  # a time-sliced job: 6 steps per invocation
  phases = []  # (10 MLE steps, then 10 adversarial steps)
  while "interrupted_at_step" in (result := adversarial.train_gan(sliced, str(tmp_path / "b"))):
    phases.append((result.get("phase", "pretrain"), result["interrupted_at_step"]))
  assert phases == [("pretrain", 6), ("adversarial", 6)]  # both phases cut and resumed
  assert result["resumed_from"] == 6  # the adversarial phase restored step 6, not step 0
  assert result["best_step"] == straight["best_step"]
  for key, value in straight["test"].items():
    assert result["test"][key] == pytest.approx(value, abs=1e-6), key

  # G can start from another run's MLE checkpoint (no pre-training of its own)
  reuse = gan_synthetic.get_config("smoke")
  reuse.gan.pretrained_dir = str(tmp_path / "a" / "pretrain")
  again = adversarial.train_gan(reuse, str(tmp_path / "c"))
  assert not (tmp_path / "c" / "pretrain").exists()
  assert again["pretrain"]["test"] == straight["pretrain"]["test"]
