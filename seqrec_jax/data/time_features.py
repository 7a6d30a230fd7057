"""Time features of each interaction (config `model.time_features`), as small integer ids.

Every feature is computed once per interaction of the dataset from its timestamps and
travels with the item through the pipeline (training windows, packed rows, evaluation
histories) as an extra column of the token array: ids [..., 1 + F], column 0 the item,
column 1 + j feature j (`split_tokens`). 0 is padding in every column. Only the times of
the history itself are used (never the target's), so nothing about the answer leaks:

  gap   TiSASRec-style interval, log-bucketed: 1 + min(floor(log2(1 + gap / 60 s)), 23)
        for the time since the user's previous interaction, `GAP_FIRST` for a user's
        first interaction (no previous one).
  hour  hour of the week (UTC, Monday 00:00 = 1 ... Sunday 23:00 = 168): the weekly
        rhythm of MovieLens-style logs.

Add a feature by registering a function `(times [N], offsets [U + 1]) -> [N] int ids`
with `@TIME_FEATURES.register("name", vocab=rows)`.
"""

from __future__ import annotations

import numpy as np

from seqrec_jax.registry import Registry

TIME_FEATURES: Registry = Registry("time feature")

GAP_BUCKETS = 24  # log2 buckets of minutes: 2^23 minutes is ~16 years
GAP_FIRST = GAP_BUCKETS + 1  # a user's first interaction


@TIME_FEATURES.register("gap", vocab=GAP_BUCKETS + 2)
def gap_ids(times: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """[N] log-bucketed seconds since the same user's previous interaction (1..24), or
  GAP_FIRST for the first one; times within a user are non-decreasing."""
  times = np.asarray(times, np.int64)
  gaps = np.diff(times, prepend=times[:1]).astype(np.float64)
  bucket = np.floor(np.log2(1.0 + np.maximum(gaps, 0.0) / 60.0)).astype(np.int64)
  ids = 1 + np.minimum(bucket, GAP_BUCKETS - 1)
  starts = np.asarray(offsets[:-1], np.int64)
  ids[starts[starts < times.size]] = GAP_FIRST
  return ids.astype(np.int32)


@TIME_FEATURES.register("hour", vocab=169)
def hour_ids(times: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """[N] hour of the week of each interaction, 1 (Monday 00:00 UTC) .. 168."""
  del offsets
  hours = np.asarray(times, np.int64) // 3600 + 72  # 1970-01-01 was a Thursday (+3 days)
  return (1 + hours % 168).astype(np.int32)


def parse(names) -> tuple[str, ...]:
  """'gap,hour' (or a sequence) -> ('gap', 'hour'), each a registered feature."""
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",")]
  names = tuple(n for n in names if n)
  for n in names:
    TIME_FEATURES.get(n)  # unknown name: error listing the choices
  return names


def history_features(names, times) -> np.ndarray:
  """[n, F] feature ids of one ad-hoc history from its `times` (unix seconds, oldest
  first): what `interaction_features` gives a user's interactions in the data."""
  try:
    t = np.asarray([float(x) for x in times], np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f"times: expected numbers (unix seconds), got {list(times)[:5]!r}") from e
  if not np.isfinite(t).all():
    raise ValueError("times: every time must be a finite number of unix seconds")
  if t.size > 1 and (np.diff(t) < 0).any():
    raise ValueError("times: a history is oldest first, so its times must not decrease")
  return _columns(parse(names), t.astype(np.int64), np.array([0, t.size], np.int64))


def _columns(names: tuple[str, ...], times: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """[N, F] int32: each feature's ids of every interaction, one column per name."""
  cols = [TIME_FEATURES.get(n)(times, offsets) for n in names]
  return (np.stack(cols, axis=1) if cols else np.zeros((len(times), 0))).astype(np.int32)


def vocab_sizes(names) -> tuple[int, ...]:
  """Embedding rows of each feature (padding row 0 included)."""
  return tuple(int(TIME_FEATURES.meta(n)["vocab"]) for n in parse(names))


def has_timestamps(data) -> bool:
  """False when the dataset's times are only the file order (0, 1, 2, ...: S3-Rec text
  files without a time column), so time features would describe nothing."""
  times = np.asarray(data.times)
  return times.size > 0 and not np.array_equal(times, np.arange(times.size))


def interaction_features(data, names, source: str = "data") -> np.ndarray:
  """[N, F] int32 ids of each interaction for the features `names` (in order)."""
  names = parse(names)
  if names and not has_timestamps(data):
    raise ValueError(f"model.time_features={','.join(names)!r}: {source} has no timestamps "
                     "(its times are the file order only); use a dataset with times or "
                     "set model.time_features=''")
  return _columns(names, data.times, data.offsets)


def split_tokens(tokens):
  """A batch of token arrays: ids [B, L] -> (ids, None); [B, L, 1 + F] -> (items [B, L],
  features [B, L, F]). Works on numpy and jax arrays alike."""
  if tokens.ndim == 3:
    return tokens[..., 0], tokens[..., 1:]
  return tokens, None
