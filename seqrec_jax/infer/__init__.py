"""Inference: `restore(workdir)` for any finished run, generation of future sequences.

Independent of `seqrec_jax.train`: a served or exported model needs only this package,
the models and the data readers.
"""

from seqrec_jax.infer.restore import Restored, recommender, restore

__all__ = ["Restored", "recommender", "restore"]
