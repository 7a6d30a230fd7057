"""Synthetic interaction logs with planted sequential structure (the offline default).

Each user mostly walks a hidden item->successor chain inside one topic, and otherwise
jumps to a popular item of that topic. A sequential model can learn the chain and the
topic; a popularity ranker cannot, so the data tells a working model from a broken one.
"""

from __future__ import annotations

import numpy as np

from seqrec_jax.data.interactions import Interactions


def generate_interactions(
    num_users: int = 2000,
    num_items: int = 500,
    num_topics: int = 10,
    min_len: int = 10,
    max_len: int = 60,
    follow_prob: float = 0.7,
    zipf: float = 1.1,
    seed: int = 0,
) -> Interactions:
  """Draws a log of `num_users` time-ordered histories over items 1..num_items."""
  if num_items < num_topics:
    raise ValueError(f"num_items ({num_items}) must be >= num_topics ({num_topics})")
  rng = np.random.default_rng(seed)
  topic_of = rng.integers(0, num_topics, size=num_items + 1)  # [I+1]
  topic_of[0] = -1
  members = [np.flatnonzero(topic_of == t) for t in range(num_topics)]
  members = [m if m.size else np.array([t + 1]) for t, m in enumerate(members)]
  successor = np.zeros(num_items + 1, np.int64)  # planted chain: a cycle per topic
  for m in members:
    perm = rng.permutation(m)
    successor[perm] = np.roll(perm, -1)
  popularity = [1.0 / np.arange(1, m.size + 1) ** zipf for m in members]
  popularity = [p / p.sum() for p in popularity]

  users, items, times = [], [], []
  for u in range(num_users):
    topic = int(rng.integers(num_topics))
    length = int(rng.integers(min_len, max_len + 1))
    seq = np.empty(length, np.int64)
    seq[0] = rng.choice(members[topic], p=popularity[topic])
    follow = rng.random(length) < follow_prob
    jumps = rng.choice(members[topic], size=length, p=popularity[topic])
    for t in range(1, length):
      seq[t] = successor[seq[t - 1]] if follow[t] else jumps[t]
    start = int(rng.integers(1_000_000_000, 1_100_000_000))
    gaps = rng.integers(0, 3600, size=length)  # zero gaps make timestamp ties
    users.append(np.full(length, u + 1, np.int64))
    items.append(seq)
    times.append(start + np.cumsum(gaps))
  n = sum(len(s) for s in items)
  return Interactions(
      users=np.concatenate(users),  # [N]
      items=np.concatenate(items),  # [N]
      timestamps=np.concatenate(times).astype(np.int64),  # [N]
      ratings=rng.integers(1, 6, size=n).astype(np.float32),  # [N]
      source=f"synthetic(seed={seed})",
      report={"lines": n, "malformed": 0, "kept": n},
  )
