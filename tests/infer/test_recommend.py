"""Recommend: top-K against a numpy reference, exclusions, allow/deny lists, batching,
raw ids, titles, every registered model, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import models, presets
from seqrec_jax.infer import recommend as rec_lib
from seqrec_jax.infer.recommend import Recommender, Request, UnknownIdError
from seqrec_jax.models.adversarial import Discriminator

REPO = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def rec(smoke_workdir):
  return Recommender.from_workdir(smoke_workdir, k_max=20)


def _reference(rec, history, k, banned=(), allowed=None):
  """Top-k by plain numpy over the model's full scores."""
  window = np.zeros((1, rec.max_len), np.int32)
  h = np.asarray(history)[-rec.max_len:]
  window[0, :h.size] = h
  scores = np.array(rec.model.apply({"params": rec.params}, jnp.asarray(window),
                                    method=models.item_scores))[0]
  ok = np.zeros(scores.size, bool)
  ok[1:rec.num_items + 1] = True
  if allowed is not None:
    keep = np.zeros_like(ok)
    keep[list(allowed)] = True
    ok &= keep
  ok[list(banned)] = False
  order = [i for i in np.argsort(-scores, kind="stable") if ok[i]]
  return order[:k], scores


def _dense(rec, entries):
  return [rec.items.get(e["item"]) for e in entries]


def test_top_k_matches_numpy_reference_with_exclusions(rec):
  for u in range(5):
    raw = rec.user_ids[u].item()
    seq = rec.sequences(u)
    got = rec.recommend(user=raw, k=10)
    want, scores = _reference(rec, seq, 10, banned=seq)
    assert _dense(rec, got) == want
    np.testing.assert_allclose([e["score"] for e in got], scores[want], rtol=1e-5, atol=1e-5)
    assert not set(_dense(rec, got)) & set(seq.tolist())  # exclude-seen
    kept = rec.recommend(user=raw, k=10, exclude_seen=False)
    assert _dense(rec, kept) == _reference(rec, seq, 10)[0]


def test_allow_and_deny_lists(rec):
  history = [rec.raw_item(i) for i in (3, 4, 5)]
  allow = [rec.raw_item(i) for i in (7, 8, 9, 10, 11, 12)]
  deny = [rec.raw_item(i) for i in (8, 11)]
  got = rec.recommend(history=history, k=10, allow=allow, exclude=deny)
  want, _ = _reference(rec, [3, 4, 5], 10, banned=[3, 4, 5, 8, 11], allowed=[7, 9, 10, 12])
  assert _dense(rec, got) == want and len(got) == 4  # fewer than k left: no filler
  assert rec.recommend(history=history, k=3, allow=["no-such-item"]) == []  # nothing allowed
  everything = [rec.raw_item(i) for i in range(1, rec.num_items + 1)]
  assert rec.recommend(history=history, k=5, exclude=everything) == []
  assert rec.recommend(history=history, k=5, exclude=["unknown", 10**9]) == \
      rec.recommend(history=history, k=5)  # unknown deny ids are ignored


def test_batch_equals_one_at_a_time(rec):
  reqs = [Request(user=rec.user_ids[u].item(), k=5) for u in range(7)]
  reqs.append(Request(history=[rec.raw_item(2), rec.raw_item(9)], k=7, exclude_seen=False))
  reqs.append(Request(user=rec.user_ids[3].item(), k=3, allow=[rec.raw_item(i)
                                                               for i in range(1, 20)]))
  batch = rec.recommend_batch(reqs)
  for req, got in zip(reqs, batch):
    alone = rec.recommend_batch([req])[0]
    assert [e["item"] for e in got] == [e["item"] for e in alone]
    np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in alone],
                               rtol=1e-5, atol=1e-5)
  small = Recommender(rec.scorer, num_items=rec.num_items, max_len=rec.max_len, k_max=20,
                      item_ids=rec.item_ids, user_ids=rec.user_ids, sequences=rec.sequences,
                      max_batch=2)  # several device calls
  assert [[e["item"] for e in r] for r in small.recommend_batch(reqs)] == \
      [[e["item"] for e in r] for r in batch]


def test_raw_ids_and_errors(rec):
  raw = rec.user_ids[0].item()
  assert rec.recommend(user=str(raw), k=3) == rec.recommend(user=raw, k=3)  # "42" or 42
  with pytest.raises(UnknownIdError, match="unknown user"):
    rec.recommend(user="no-such-user")
  with pytest.raises(UnknownIdError, match="unknown item") as e:
    rec.recommend(history=[rec.raw_item(1), "nope"])
  assert e.value.ids == ["nope"]
  with pytest.raises(ValueError, match="k=0"):
    rec.recommend(user=raw, k=0)
  with pytest.raises(ValueError, match="k=21"):
    rec.recommend(user=raw, k=21)
  with pytest.raises(ValueError, match="exactly one"):
    rec.prepare(Request(user=raw, history=[1]))


def test_long_history_uses_the_latest_window(rec):
  long = np.arange(1, 51) % rec.num_items + 1  # longer than max_len = 20
  got = rec.recommend(history=[rec.raw_item(int(i)) for i in long], k=5, exclude_seen=False)
  assert _dense(rec, got) == _reference(rec, long, 5)[0]


def _tiny(cls, **kw):
  return cls(num_items=30, max_len=8, embed_dim=16, num_blocks=1, num_heads=2, mlp_dim=32, **kw)


@pytest.mark.parametrize("name", sorted(models.MODELS.names()) + ["discriminator"])
def test_every_model_of_the_registry(name):
  if name == "discriminator":  # the ELECRec recommender of an adversarial run
    model = Discriminator(num_items=30, max_len=10, head="dot", embed_dim=16, num_heads=2,
                          mlp_dim=32)
  else:
    model = _tiny(models.MODELS.get(name))
  dummy = jnp.zeros((1, 8), jnp.int32)
  init = model.init_all if hasattr(model, "init_all") else None
  params = model.init({"params": jax.random.PRNGKey(0)}, dummy, method=init)["params"]
  fn = rec_lib.make_recommend_fn(model, 30, 10)
  item_ids = np.arange(0, 31) * 10  # raw ids 10, 20, ... (0 = placeholder)
  seqs = [np.array([1, 2, 3]), np.array([5, 9, 5, 12, 30, 29, 1, 2, 3, 4])]
  r = Recommender(lambda h, c: fn(params, h, c), num_items=30, max_len=8, k_max=10,
                  item_ids=item_ids, user_ids=np.array([100, 200]), sequences=seqs.__getitem__)
  for u, seq in enumerate(seqs):
    got = r.recommend(user=[100, 200][u], k=10)
    window = np.zeros((1, 8), np.int32)
    window[0, :min(8, seq.size)] = seq[-8:]
    scores = np.array(model.apply({"params": params}, jnp.asarray(window),
                                  method=models.item_scores))[0]
    assert scores.shape[0] >= 31
    scores[0] = -np.inf
    scores[31:] = -np.inf  # special tokens (mask, BOS) are never recommended
    scores[seq] = -np.inf
    want = np.argsort(-scores, kind="stable")[:10]
    assert [e["item"] for e in got] == [int(i) * 10 for i in want]


def test_titles_tsv_reader_and_known_text(tmp_path):
  path = tmp_path / "text.tsv"
  path.write_text('item_id\tasin\ttitle\tcategories\n1\t0123\t"Quoted" Title\tA > B\n'
                  '2\tB00X\tPlain\tC\n')
  assert rec_lib.load_titles(str(path)) == {1: '"Quoted" Title', 2: "Plain"}
  cfg = presets.get("sasrec_toys")
  assert rec_lib.titles_path(cfg).endswith("amazon-text/Toys_and_Games_item_text.tsv")
  assert rec_lib.titles_path(presets.get("sasrec_ml1m")).endswith("ml-1m/movies.dat")
  assert rec_lib.titles_path(presets.default("smoke")) == ""


@pytest.mark.data
def test_amazon_toys_titles(shared_data):
  titles = rec_lib.load_titles(str(shared_data / "amazon-text" / "Toys_and_Games_item_text.tsv"))
  assert len(titles) == 11924
  assert titles[1].startswith("Pocoyo And Friends")


def _cli(*flags):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "seqrec_jax.recommend", *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=300, env=env)


def test_cli_user_history_json_and_errors(smoke_workdir, rec, tmp_path_factory):
  workdir = smoke_workdir
  u0, u1 = rec.user_ids[0].item(), rec.user_ids[1].item()
  out = _cli(f"--workdir={workdir}", f"--user={u0},{u1}", "--k=4")
  assert out.returncode == 0, out.stderr
  assert f"user {u0}:" in out.stdout and f"user {u1}:" in out.stdout
  first = rec.recommend(user=u0, k=4)
  assert f"   1. {first[0]['item']}  score {first[0]['score']:.3f}" in out.stdout
  out = _cli(f"--workdir={workdir}", "--history=3,4,5", "--k=3", "--json", "--explain")
  assert out.returncode == 0, out.stderr
  result = json.loads(out.stdout)["results"][0]
  assert [e["item"] for e in result["recommendations"]] == \
      [e["item"] for e in rec.recommend(history=[3, 4, 5], k=3)]
  assert set(result["recommendations"][0]["because"]) == {"occlusion", "grad_input", "rollout"}
  out = _cli(f"--workdir={workdir}", "--user=no-such-user")
  assert out.returncode == 2 and "unknown user id: 'no-such-user'" in out.stderr
