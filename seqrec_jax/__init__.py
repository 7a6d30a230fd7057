"""seqrec_jax: Transformer sequential recommendation in JAX/Flax."""

__version__ = "0.1.0"
