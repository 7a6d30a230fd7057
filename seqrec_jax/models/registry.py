"""The model registry: `@register_model(name, tasks=..., options=...)` on the class.

`tasks`: the training tasks that fit the model (the first is `task.name="auto"`);
`options`: model-specific config fields with their defaults, merged into
`base_config().model` so they are settable as `--config.model.<field>=...`;
`preset`: optional `fn(cfg, movielens: bool)` the dataset presets apply for the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seqrec_jax.registry import Registry

MODELS: Registry = Registry("model")


def register_model(name: str, *, tasks: tuple[str, ...], options: dict[str, Any] | None = None,
                   preset: Callable | None = None):
  """Class decorator registering a `SequenceModel` subclass under `name`."""
  if not tasks:
    raise ValueError(f"model {name!r} must name at least one training task")
  return MODELS.register(name, tasks=tuple(tasks), options=dict(options or {}), preset=preset)


def model_tasks() -> dict[str, tuple[str, ...]]:
  """{model name: the tasks that train it}; the first is what task.name='auto' means."""
  return {e.name: e.meta["tasks"] for e in MODELS}


def model_options() -> dict[str, Any]:
  """Every model-specific option with its default (one default per option name)."""
  out: dict[str, Any] = {}
  for e in MODELS:
    for key, default in e.meta["options"].items():
      if key in out and out[key] != default:
        raise ValueError(f"model option {key!r} has two defaults ({out[key]!r}, {default!r})")
      out[key] = default
  return out
