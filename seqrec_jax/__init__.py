"""seqrec_jax: Transformer sequential recommendation in JAX/Flax.

The public surface, for other JAX projects (everything else is internal):

* configs: `base_config()`, `load_config(workdir)`, `presets.get(name)` /
  `presets.preset(model, dataset)`;
* data: `load_dataset(config.data)`, `leave_one_out(dataset)`, `split_for(config.data,
  dataset)` (with cold items), `SequenceDataset`;
* models: `build_model(config.model, num_items)`, `MODELS` (the registry),
  `register_model`, `SequenceModel` (shared hyper-parameters), the Protocols
  `ScoringModel` (`encode`, `item_table`) and `GenerativeModel` (`prefill`,
  `decode_step`), `item_scores`; the classes `SASRec`, `BERT4Rec`, `Seq2Seq`;
* losses and samplers: `losses.LOSSES`, `losses.full_softmax_ce`, `losses.sampled_bce`,
  `samplers.SAMPLERS`; metrics: `metrics.target_ranks`, `ndcg_at_k`, `hr_at_k`;
* training: `train(config, workdir, objective="mle")` (the engine), `OBJECTIVES`;
* evaluation and inference: `evaluate_stage`, `restore(workdir)`;
* the loop: `update(workdir, events_path)` (a new model version from new events),
  `versions` (which version is published).
"""

from seqrec_jax import losses, metrics, presets, samplers, versions
from seqrec_jax.config import base_config, load_config
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out, split_for
from seqrec_jax.data.load import load_dataset
from seqrec_jax.evaluation import evaluate_stage
from seqrec_jax.infer.restore import Restored, restore
from seqrec_jax.models import (BERT4Rec, MODELS, GenerativeModel, SASRec, ScoringModel, Seq2Seq,
                               SequenceModel, build_model, item_scores, register_model)
from seqrec_jax.train.engine import OBJECTIVES
from seqrec_jax.train.engine import run as train
from seqrec_jax.train.update import update

__version__ = "0.1.0"

__all__ = [
    "BERT4Rec", "GenerativeModel", "MODELS", "OBJECTIVES", "Restored", "SASRec", "ScoringModel",
    "Seq2Seq", "SequenceDataset", "SequenceModel", "base_config", "build_model", "evaluate_stage",
    "item_scores", "leave_one_out", "load_config", "load_dataset", "losses", "metrics", "presets",
    "register_model", "restore", "samplers", "split_for", "train", "update", "versions",
]
