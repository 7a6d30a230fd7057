"""Models: one module per model, each registered by name (`registry.register_model`).

Every module of this package is imported here, so a new model file registers itself
without any other file changing. `build_model(config.model, num_items)` builds one.
"""

from __future__ import annotations

import importlib
import pkgutil

import flax.linen as nn

from seqrec_jax.models.base import SHARED_FIELDS, SequenceModel, compute_dtype
from seqrec_jax.models.interfaces import GenerativeModel, ScoringModel, item_scores
from seqrec_jax.models.registry import MODELS, model_options, model_tasks, register_model

for _info in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_info.name}")

from seqrec_jax.models.bert4rec import BERT4Rec  # noqa: E402
from seqrec_jax.models.sasrec import SASRec  # noqa: E402
from seqrec_jax.models.seq2seq import Seq2Seq  # noqa: E402

def build_model(cfg, num_items: int, item_text=None, item_attributes=None,
                finetune=None) -> nn.Module:
  """The registered model `cfg.name` over items 1..num_items, from `config.model`;
  `item_text` [num_items + 1, T]: the item text embeddings a text `item_repr` uses;
  `item_attributes` (`data.item_text.ItemAttributes`): attribute ids per item;
  `finetune` (`models.text_finetune.FinetuneText`): what `text_finetune` starts from."""
  entry = MODELS.entry(cfg.name)
  kwargs = {field: cfg[field] for field in SHARED_FIELDS}
  # pylint: disable=import-outside-toplevel
  from seqrec_jax.models.item_repr import HostArray
  if item_text is not None:
    kwargs["item_text"] = HostArray(item_text)
    kwargs["text_dim"] = int(item_text.shape[1])
  if finetune is not None:
    kwargs["finetune"] = finetune
    kwargs["text_dim"] = int(finetune.config.hidden_size)
  if item_attributes is not None:
    kwargs["item_attributes"] = HostArray(item_attributes.ids)
    kwargs["num_attributes"] = int(item_attributes.num_attributes)
  kwargs["dtype"] = compute_dtype(cfg.dtype)
  kwargs["attention_impl"] = cfg.attention_impl or None
  from seqrec_jax.data.time_features import parse
  kwargs["time_features"] = parse(cfg.get("time_features", ""))
  kwargs.update({key: cfg[key] for key in entry.meta["options"]})
  return entry.obj(num_items=num_items, **kwargs)


__all__ = ["BERT4Rec", "GenerativeModel", "MODELS", "SASRec", "ScoringModel", "Seq2Seq",
           "SequenceModel", "build_model", "compute_dtype", "item_scores", "model_options",
           "model_tasks", "register_model"]
