"""Packed sequences: the layout, the Grain and device streams, and packed = unpacked."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from seqrec_jax import config as config_lib
from seqrec_jax import parallel
from seqrec_jax.data import device_data, packing, pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out
from seqrec_jax.models import layers
from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.train import loop, objectives

VOCAB = 40
LOSS = ml_collections.ConfigDict(dict(name="ce", vocab_chunk=0, num_negatives=1,
                                       seen_margin=0.0))


def _split(num_users=60, seed=0, max_items=30):
  """Mostly short histories (2..max_items items), as on Amazon-style data."""
  rng = np.random.default_rng(seed)
  lengths = np.minimum(rng.geometric(0.15, size=num_users) + 2, max_items)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(1, VOCAB + 1, size=offsets[-1]).astype(np.int32)
  data = SequenceDataset(offsets=offsets, items=items, times=np.arange(offsets[-1]),
                         user_ids=np.arange(num_users), item_ids=np.arange(VOCAB + 1))
  return leave_one_out(data)


def _packed(split, example):
  source = pipeline.TrainSequences(split)
  return packing.PackedSequences(source, example.window_lengths(source.lengths),
                                 example.max_len)


# ---- The layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("row_len", [1, 5, 16])
def test_template_slots_fit_without_overlap_and_pack_tightly(row_len):
  rng = np.random.default_rng(1)
  lengths = rng.integers(1, row_len + 1, size=300)
  t = packing.pack_template(lengths, row_len)
  assert sorted(t.length.tolist()) == sorted(lengths.tolist())  # one slot per window
  used = np.zeros((t.num_rows, row_len), np.int32)
  for s in range(t.length.size):
    assert t.row_start[t.row[s]] <= s < t.row_start[t.row[s] + 1]
    assert 0 <= t.offset[s] and t.offset[s] + t.length[s] <= row_len
    used[t.row[s], t.offset[s]:t.offset[s] + t.length[s]] += 1
  assert used.max() == 1  # no two slots share a position
  assert (used.sum(1) > 0).all()  # no empty row
  lower = -(-lengths.sum() // row_len)
  assert lower <= t.num_rows <= 1.02 * lower + 2  # best-fit decreasing: near the bound
  # each row is filled from position 0 with no gap (segments back to back)
  assert all(used[r, :used[r].sum()].all() for r in range(t.num_rows))
  slot, pos, seg = t.position_arrays()
  for s in range(t.length.size):
    cols = slice(t.offset[s], t.offset[s] + t.length[s])
    assert (slot[t.row[s], cols] == s).all()
    np.testing.assert_array_equal(pos[t.row[s], cols], np.arange(t.length[s]))
    assert (seg[t.row[s], cols] == s - t.row_start[t.row[s]] + 1).all()
  assert ((slot < 0) == (seg == 0)).all()


def test_template_rejects_windows_longer_than_the_row():
  with pytest.raises(ValueError, match="window lengths"):
    packing.pack_template(np.array([3, 9]), 8)


def test_each_epoch_deals_every_sequence_once_to_a_slot_of_its_length():
  packed = _packed(_split(), pipeline.CausalExample(12))
  t = packed.template
  layouts = [packed.epoch_layout(seed=3, epoch=e) for e in range(3)]
  for e, (rows, slot_seq, slot_pos) in enumerate(layouts):
    assert sorted(rows.tolist()) == list(range(len(packed)))
    assert sorted(slot_seq.tolist()) == list(range(packed.num_sequences))
    np.testing.assert_array_equal(packed.windows[slot_seq], t.length)
    # the position is the sequence's place in the unpacked epoch's permutation
    perm = pipeline.epoch_permutation(3, e, packed.num_sequences)
    np.testing.assert_array_equal(perm[slot_pos], slot_seq)
  assert not np.array_equal(layouts[0][1], layouts[1][1])  # fresh rows each epoch
  assert not np.array_equal(layouts[0][0], layouts[1][0])
  again = packed.epoch_layout(seed=3, epoch=1)
  for a, b in zip(again, layouts[1]):
    np.testing.assert_array_equal(a, b)  # deterministic


# ---- The Grain stream ---------------------------------------------------------------------


def _unpacked_example(example, source, seed, g):
  """What the unpacked stream's element g holds (`EpochShuffled` + the example map)."""
  index, seq = pipeline.EpochShuffled(source, seed)[g]
  assert index == g
  return seq, example(seq, np.random.default_rng([seed, g]))


@pytest.mark.parametrize("example", [pipeline.CausalExample(12, "random"),
                                     pipeline.ClozeExample(12, mask_id=VOCAB + 1)])
def test_packed_rows_hold_the_unpacked_epoch_examples(example):
  split, seed, batch = _split(), 4, 4
  packed = _packed(split, example)
  source = packed.source
  it = iter(pipeline.train_dataset(packed, example, global_batch=batch, seed=seed))
  steps = len(packed) // batch
  stream = packing.PackedEpochs(packed, seed)
  seen = {}
  for b in range(2 * steps):  # the stream runs on across epochs, like the unpacked one
    rows = next(it)
    assert set(rows) == {*example.window_keys, "segment_ids", "positions"}
    for r in range(batch):
      i = b * batch + r  # the row's index in the stream
      segments = stream.segments(i)
      filled = 0
      for j, (g, seq, off, n) in enumerate(segments):
        assert g // len(source) == i // len(packed)  # the same epoch
        unpacked_seq, full = _unpacked_example(example, source, seed, g)
        np.testing.assert_array_equal(source[seq], unpacked_seq)  # the same sequence
        for key in example.window_keys:
          np.testing.assert_array_equal(rows[key][r, off:off + n], full[key][:n])
          assert not full[key][n:].any()  # the window is the whole example
        assert (rows["segment_ids"][r, off:off + n] == j + 1).all()
        np.testing.assert_array_equal(rows["positions"][r, off:off + n], np.arange(n))
        seen.setdefault(i // len(packed), []).append(seq)
        filled = max(filled, off + n)
      assert not rows["segment_ids"][r, filled:].any()
      assert not rows["inputs"][r, filled:].any()
  # every sequence at most once per epoch, and all of them in the first (whole) epoch
  assert all(len(v) == len(set(v)) for v in seen.values())
  assert sorted(seen[0]) == list(range(len(source)))


def test_packed_stream_splits_over_processes_and_resumes():
  split, seed, example = _split(), 1, pipeline.CausalExample(12)
  packed = _packed(split, example)
  one = iter(pipeline.train_dataset(packed, example, global_batch=4, seed=seed))
  parts = [iter(pipeline.train_dataset(packed, example, global_batch=4, seed=seed,
                                       process_index=p, process_count=2)) for p in range(2)]
  for _ in range(3):
    whole = next(one)
    a, b = next(parts[0]), next(parts[1])
    # process p holds stream rows p, p + 2, ...: rows (0, 2) and (1, 3) of the batch
    for key in whole:
      np.testing.assert_array_equal(a[key], whole[key][0::2])
      np.testing.assert_array_equal(b[key], whole[key][1::2])
  state = one.get_state()
  expected = [next(one) for _ in range(2)]
  resumed = iter(pipeline.train_dataset(packed, example, global_batch=4, seed=seed))
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_packing_removes_most_padding():
  split, example = _split(num_users=200), pipeline.CausalExample(20)
  packed = _packed(split, example)
  windows = packed.windows
  plain_fill = windows.sum() / (windows.size * 20)
  assert packed.fill() > 0.95 > 2 * plain_fill
  assert packing.padding_fraction(packed) == pytest.approx(1 - packed.fill())
  assert len(packed) < windows.size / 2


# ---- Packed = unpacked: losses and gradients ----------------------------------------------


def _pack_batch(examples, row_len, keys):
  """Examples [L] each -> packed rows of `row_len` via the library's template."""
  windows = np.array([int((e["inputs"] > 0).sum()) for e in examples])
  t = packing.pack_template(windows, row_len)
  rows = {k: np.zeros((t.num_rows, row_len), examples[0][k].dtype) for k in keys}
  rows["segment_ids"] = np.zeros((t.num_rows, row_len), np.int32)
  rows["positions"] = np.zeros((t.num_rows, row_len), np.int32)
  order = np.argsort(t.length, kind="stable")  # slots by length <- examples by length
  owner = np.empty(len(examples), np.int64)
  owner[order] = np.argsort(windows, kind="stable")
  for s in range(t.length.size):
    ex, r, off, n = examples[owner[s]], t.row[s], t.offset[s], t.length[s]
    for k in keys:
      rows[k][r, off:off + n] = ex[k][:n]
    rows["segment_ids"][r, off:off + n] = s - t.row_start[r] + 1
    rows["positions"][r, off:off + n] = np.arange(n)
  return rows, owner, t


@functools.partial(jax.jit, static_argnums=0)
def _per_target_nll(model, params, batch):
  hidden = model.apply({"params": params}, batch["inputs"],
                       **objectives.model_inputs(batch))  # [B, L, D]
  table = model.apply({"params": params}, method=model.item_table)
  logits = hidden @ table[1:].T
  lse = jax.nn.logsumexp(logits, axis=-1)
  tgt = jnp.sum(hidden * table[batch["targets"]], axis=-1)
  return (lse - tgt) * batch["weights"]  # [B, L]


def _examples(kind, num=16, row_len=16, seed=0):
  split = _split(num_users=num, seed=seed, max_items=12)
  source = pipeline.TrainSequences(split)
  if kind == "causal":
    example = pipeline.CausalExample(row_len, "random")
  else:
    example = pipeline.ClozeExample(row_len, mask_id=VOCAB + 1, mask_prob=0.3)
  return [example(source[i], np.random.default_rng([seed, i])) for i in range(len(source))]


@pytest.mark.parametrize("kind,scan", [("causal", False), ("cloze", False), ("cloze", True)])
def test_packed_batch_has_the_unpacked_per_sequence_losses_and_gradients(kind, scan):
  row_len = 16
  examples = _examples(kind, row_len=row_len)
  keys = ("inputs", "targets", "weights")
  plain = {k: np.stack([e[k] for e in examples]) for k in keys}
  packed, owner, t = _pack_batch(examples, row_len, keys)
  assert t.num_rows <= len(examples) // 2  # really packed: several histories per row
  cls = SASRec if kind == "causal" else BERT4Rec
  model = cls(num_items=VOCAB, max_len=row_len, embed_dim=16, num_blocks=2, num_heads=2,
              mlp_dim=32, dropout=0.0, emb_dropout=0.0, scan_layers=scan)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, row_len), jnp.int32))["params"]
  # per sequence: the sum of its per-target losses
  per_plain = np.asarray(_per_target_nll(model, params, plain)).sum(1)  # [n]
  nll = np.asarray(_per_target_nll(model, params, packed))
  per_packed = np.zeros(len(examples))
  for s in range(t.length.size):
    off, n = t.offset[s], t.length[s]
    per_packed[owner[s]] = nll[t.row[s], off:off + n].sum()
  np.testing.assert_allclose(per_packed, per_plain, rtol=2e-5, atol=2e-5)
  # the training loss (mean over real targets) and its gradients
  loss_fn = (objectives.causal_loss if kind == "causal" else objectives.cloze_loss)(model, LOSS)
  rng = jax.random.PRNGKey(3)
  grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (l_plain, aux_plain), g_plain = grad(params, plain, rng)
  (l_packed, aux_packed), g_packed = grad(params, packed, rng)
  assert float(aux_plain["targets"]) == float(aux_packed["targets"]) > 0
  np.testing.assert_allclose(l_packed, l_plain, rtol=1e-5)
  assert_grads_close(g_packed, g_plain)


def assert_grads_close(got, want, tol=1e-4):
  """Each leaf within `tol` of its own scale, or of 1e-3 x the largest gradient for leaves
  that are zero up to float noise (e.g. the key bias, which softmax ignores)."""
  want, got = jax.device_get((want, got))
  top = max(float(np.abs(a).max()) for a in jax.tree.leaves(want))
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got)):
    scale = max(float(np.abs(a).max()), 1e-3 * top)
    np.testing.assert_allclose(np.asarray(b) / scale, np.asarray(a) / scale, atol=tol,
                               err_msg=jax.tree_util.keystr(path))


def test_segment_mask_is_block_diagonal_and_causal():
  seg = jnp.array([[1, 1, 2, 2, 2, 0]])
  causal = np.asarray(layers.segment_mask(seg, causal=True))[0, 0]
  bidir = np.asarray(layers.segment_mask(seg, causal=False))[0, 0]
  assert causal[1, 0] and not causal[0, 1] and not causal[2, 1] and causal[4, 2]
  assert bidir[0, 1] and bidir[2, 4] and not bidir[1, 2] and not bidir[4, 5]
  assert bidir[5, 5] and causal[5, 5]  # padding attends to itself: no empty row


# ---- The device path ----------------------------------------------------------------------


@pytest.mark.parametrize("process_count", [1, 2])
def test_device_packed_batches_equal_grain_packed_batches(process_count):
  split, batch, seed, max_len = _split(), 4, 5, 12
  example = pipeline.CausalExample(max_len)
  packed = _packed(split, example)
  steps = 2 * (len(packed) // batch) + 1  # into the third epoch
  data = device_data.build_causal_data(split, packed.users, max_len=max_len, batch_size=batch,
                                       num_steps=steps, seed=seed, process_count=process_count,
                                       packed=packed)
  iters = [iter(pipeline.train_dataset(packed, example, global_batch=batch, seed=seed,
                                       process_index=p, process_count=process_count))
           for p in range(process_count)]
  make = jax.jit(device_data.causal_batch)
  for k in range(steps):
    parts = [next(it) for it in iters]
    want = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    got = jax.device_get(make(data, jnp.int32(k)))
    assert set(got) == set(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=f"batch {k} {key}")
      assert got[key].dtype == want[key].dtype


def test_device_packed_random_crop_gives_whole_windows_of_each_sequence():
  split, max_len = _split(max_items=40), 12
  packed = _packed(split, pipeline.CausalExample(max_len))
  data = device_data.build_causal_data(split, packed.users, max_len=max_len, batch_size=4,
                                       num_steps=6, seed=1, crop="random", packed=packed)
  seqs = [packed.source[i] for i in range(packed.num_sequences)]
  for k in range(6):
    got = jax.device_get(jax.jit(device_data.causal_batch)(data, jnp.int32(k)))
    for r in range(4):
      for s in range(1, got["segment_ids"][r].max() + 1):
        cols = got["segment_ids"][r] == s
        inputs, targets = got["inputs"][r][cols], got["targets"][r][cols]
        np.testing.assert_array_equal(got["positions"][r][cols], np.arange(cols.sum()))
        np.testing.assert_array_equal(inputs[1:], targets[:-1])
        window = np.concatenate([inputs[:1], targets])
        n = window.size - 1
        assert any(len(q) >= n + 1 and (n == max_len or n == len(q) - 1)
                   and any((q[i:i + n + 1] == window).all() for i in range(len(q) - n))
                   for q in seqs)


# ---- Config and the engine ----------------------------------------------------------------


def _smoke(**overrides):
  cfg = default.get_config("smoke")
  cfg.train.packing = True
  for key, value in overrides.items():
    section, field = key.split(".")
    cfg[section][field] = value
  return cfg


@pytest.mark.parametrize("overrides,match", [
    ({"model.name": "gru4rec"}, "does not take segment ids"),
    ({"model.name": "seq2seq"}, "does not take segment ids"),
    ({"train.length_grouping": 4}, "length_grouping"),
    ({"loss.seen_margin": 1.0}, "seen_margin"),
])
def test_config_rejects_packing_where_it_does_not_apply(overrides, match):
  with pytest.raises(ValueError, match=match):
    config_lib.validate(_smoke(**overrides))


def test_config_accepts_packing_for_sasrec_and_bert4rec_on_both_paths():
  config_lib.validate(_smoke())
  config_lib.validate(_smoke(**{"train.input": "device"}))
  config_lib.validate(_smoke(**{"model.name": "bert4rec"}))


@pytest.mark.parametrize("path", [pytest.param("grain", marks=pytest.mark.slow),
                                  pytest.param("device", marks=pytest.mark.slow)])
def test_packed_training_end_to_end(tmp_path, path):
  cfg = _smoke(**{"train.input": path, "train.num_epochs": 1})
  report = loop.train_and_evaluate(cfg, str(tmp_path))
  assert report["test"]["users"] > 0 and np.isfinite(report["test"]["ndcg@10"])
