"""Train state and its sharded creation (abstract init, then jitted init onto shardings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from seqrec_jax import parallel


@flax.struct.dataclass
class TrainState:
  """Everything a step updates. Plain pytree: checkpointed whole by Orbax."""

  step: jax.Array  # [] int32
  params: Any
  opt_state: Any
  rng: jax.Array  # [2] uint32 raw key; folded with `step` for per-step randomness


def state_shardings(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                    mesh: Mesh, rules=parallel.DEFAULT_RULES) -> tuple[TrainState, Any]:
  """(abstract state: ShapeDtypeStructs on their shardings, state shardings) of the
  state `create_train_state` builds, without computing anything."""
  boxed = jax.eval_shape(init_params, jax.random.PRNGKey(0))
  params_sh = parallel.param_shardings(boxed, mesh, rules)
  abstract_params = nn.meta.unbox(boxed)
  abstract_opt = jax.eval_shape(tx.init, abstract_params)
  rep = parallel.replicated(mesh)
  state_sh = TrainState(step=rep, params=params_sh,
                        opt_state=parallel.optimizer_shardings(tx, abstract_opt, params_sh, mesh),
                        rng=rep)
  like = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=abstract_params,
                    opt_state=abstract_opt, rng=jax.ShapeDtypeStruct((2,), jnp.uint32))
  return abstract_state(state_sh, like), state_sh


def create_train_state(init_params: Callable[[jax.Array], Any], tx: optax.GradientTransformation,
                       seed: int, mesh: Mesh, rules=parallel.DEFAULT_RULES
                       ) -> tuple[TrainState, Any]:
  """Builds the state directly on its shardings; returns (state, state_shardings).

  `init_params(rng)` returns the (logically boxed) Flax params. Nothing is ever
  materialised unsharded on one device.
  """
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed))
  _, state_sh = state_shardings(init_params, tx, mesh, rules)

  def init(rng):
    params = nn.meta.unbox(init_params(rng))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=state_rng)

  state = jax.jit(init, out_shardings=state_sh)(init_rng)
  return state, state_sh


def abstract_state(state_sh: Any, like: TrainState) -> TrainState:
  """ShapeDtypeStructs carrying the target shardings (for restoring a checkpoint)."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      like, state_sh)
