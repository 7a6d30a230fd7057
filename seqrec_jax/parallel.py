"""Meshes, logical-axis rules and the host->device hand-off of batches.

Axes are `Auto`, so XLA propagates shardings from the few we pin (batch on `data`,
the item table's vocab rows on `model`). The same code runs on 1 device, on 8 CPU
devices and across hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

# Logical name -> mesh axis. Item rows shard on `model` (a no-op when it has size 1).
# "layers": the leading axis of scanned block params (`model.scan_layers`), replicated.
DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (
    ("batch", "data"), ("vocab", "model"), ("embed", None), ("mlp", None),
    ("heads", None), ("kv", None), ("layers", None))


def maybe_initialize_distributed(coordinator: str = "", num_processes: int = 1,
                                 process_id: int = 0) -> None:
  """Joins a multi-process run when asked (or when the cluster is auto-detected)."""
  if coordinator:
    if jax.config.jax_platforms in ("cpu", None) or "cpu" in str(jax.config.jax_platforms):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU-only clusters/tests
    jax.distributed.initialize(coordinator_address=coordinator,
                               num_processes=num_processes, process_id=process_id)


def make_mesh(shape: Sequence[int] = (-1, 1), axes: Sequence[str] = ("data", "model"),
              devices: Sequence[Any] | None = None) -> Mesh:
  """A mesh over all devices; one -1 in `shape` takes the remaining devices."""
  devices = list(jax.devices() if devices is None else devices)
  shape = list(shape)
  if len(shape) != len(axes):
    raise ValueError(f"mesh.shape {tuple(shape)} and mesh.axes {tuple(axes)} differ in length")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh.shape {tuple(shape)} has more than one -1")
  known = int(np.prod([s for s in shape if s != -1]))
  if -1 in shape:
    if len(devices) % known:
      raise ValueError(f"mesh.shape {tuple(shape)} does not divide {len(devices)} devices")
    shape[shape.index(-1)] = len(devices) // known
  if int(np.prod(shape)) != len(devices):
    raise ValueError(f"mesh.shape {tuple(shape)} needs {int(np.prod(shape))} devices, "
                     f"found {len(devices)}")
  return jax.make_mesh(tuple(shape), tuple(axes), axis_types=(AxisType.Auto,) * len(axes),
                       devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def param_shardings(boxed_params: Any, mesh: Mesh, rules=DEFAULT_RULES) -> Any:
  """Shardings of a params tree whose leaves carry logical axis metadata."""
  specs = nn.get_partition_spec(boxed_params)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def optimizer_shardings(tx: optax.GradientTransformation, abstract_opt_state: Any,
                        params_sh: Any, mesh: Mesh) -> Any:
  """Optimizer state follows its parameter's sharding; counters are replicated. The
  placeholders of parameters a transform leaves out (`optax.MaskedNode`: the frozen
  parameters of `optim.build_optimizer(skip_frozen=True)`) stay placeholders."""
  masked = lambda x: isinstance(x, optax.MaskedNode)
  return optax.tree_map_params(
      tx, lambda p, sh: p if masked(p) else sh, abstract_opt_state, params_sh,
      transform_non_params=lambda _: replicated(mesh), is_leaf=masked)


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """Process-local numpy batch -> global arrays sharded on the batch axis."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)
