"""Training: the engine (`engine.run`), its objectives ("mle", "adversarial"), state,
task losses, jitted steps, optimizer and checkpoints.

Importing the package registers the objectives shipped with it.
"""

from seqrec_jax.train import adversarial as _adversarial  # noqa: F401  (registers "adversarial")
from seqrec_jax.train import mle as _mle  # noqa: F401  (registers "mle")
