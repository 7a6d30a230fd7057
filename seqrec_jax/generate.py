"""`python -m seqrec_jax.generate --workdir=DIR --user=RAW_ID [--steps=5 --beams=4
--method=beam|greedy|sample --temperature=1 --top_k=0 --top_p=1 --seed=0]`.

Generates the next items of one user with the run's best-on-validation model (SASRec
rolled out, Seq2Seq's decoder, ...), from the user's full history (train + valid +
test), and prints each sequence with its log-probability and, where the dataset has
item metadata (`data.titles_path`), titles.
"""

from __future__ import annotations

import json

from absl import app, flags

from seqrec_jax import cli

from seqrec_jax.infer.for_user import generate_for_user
from seqrec_jax.infer.generate import METHODS, GenerateConfig

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_USER = flags.DEFINE_string("user", None, "Raw user id (as in the data files).")
_STEPS = flags.DEFINE_integer("steps", 5, "Items to generate.")
_BEAMS = flags.DEFINE_integer("beams", 4, "Beam width (sample: sequences to draw).")
_METHOD = flags.DEFINE_enum("method", "beam", list(METHODS), "Decoding method.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sampling: keep the k most likely items (0 = all).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Sampling: nucleus probability mass.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_NO_REPEAT_HISTORY = flags.DEFINE_bool("no_repeat_history", True,
                                       "Never generate an item the user already has.")
_NO_REPEAT_GENERATED = flags.DEFINE_bool("no_repeat_generated", True,
                                         "Never generate an item twice in a sequence.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of text.")


def _label(entry: dict) -> str:
  return f"{entry['item']} ({entry['title']})" if entry.get("title") else str(entry["item"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = GenerateConfig(steps=_STEPS.value, method=_METHOD.value, beams=_BEAMS.value,
                       temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value,
                       no_repeat_history=_NO_REPEAT_HISTORY.value,
                       no_repeat_generated=_NO_REPEAT_GENERATED.value)
  try:
    result = generate_for_user(_WORKDIR.value, _USER.value, cfg, _SEED.value)
  except KeyError as e:
    raise app.UsageError(str(e.args[0])) from e
  if _JSON.value:
    print(json.dumps(result, indent=2))
    return
  print(f"user {result['user']}: {result['history_length']} items; latest: "
        + ", ".join(_label(e) for e in result["history_tail"]))
  print(f"{result['model']} (step {result['best_step']}), {cfg.method}, {cfg.steps} steps:")
  for rank, s in enumerate(result["sequences"], 1):
    print(f"  #{rank}  log p = {s['score']:.3f}")
    for t, entry in enumerate(s["items"], 1):
      print(f"      {t}. {_label(entry)}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "user"])
  cli.run(main)
