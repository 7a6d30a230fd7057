"""`python -m seqrec_jax.recommend --workdir=DIR (--user=RAW_ID[,RAW_ID...] |
--history=RAW,RAW,...) [--k=10 --exclude_seen --exclude=... --allow=... --explain]`.

Top-k items for known users (their whole history) or an ad-hoc history of raw item ids
(oldest first), from the run's best-on-validation recommender (any model, any run kind)
or from an export (`--export=DIR`, see `infer/export.py`). Prints each item's raw id,
score and, where the dataset has them, title (MovieLens movies.dat / u.item, Amazon Toys
titles; `--titles=PATH` for another file). `--explain` adds, under each item, the
history items that drove it with their shares: leave-one-out occlusion, gradient x
input and, for attention models, attention rollout (`infer/explain.py`).
`--export_to=DIR` writes the export instead.
"""

from __future__ import annotations

import json

import numpy as np
from absl import app, flags

from seqrec_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_EXPORT = flags.DEFINE_string("export", None, "Use an exported model (infer/export.py) instead.")
_USER = flags.DEFINE_list("user", None, "Raw user id(s), comma-separated.")
_HISTORY = flags.DEFINE_list("history", None, "An ad-hoc history: raw item ids, oldest first.")
_TIMES = flags.DEFINE_list("times", None, "Unix seconds of each --history item, oldest first "
                           "(models trained with model.time_features).")
_K = flags.DEFINE_integer("k", 10, "Items to recommend.")
_EXCLUDE_SEEN = flags.DEFINE_bool("exclude_seen", True, "Never recommend a history item.")
_EXCLUDE = flags.DEFINE_list("exclude", [], "Deny list: raw item ids never to recommend.")
_ALLOW = flags.DEFINE_list("allow", None, "Allow list: recommend only these raw item ids.")
_EXPLAIN = flags.DEFINE_bool("explain", False, "Show the history items behind each item.")
_EXPLAIN_TOP = flags.DEFINE_integer("explain_top", 3, "History items shown per method.")
_METHODS = flags.DEFINE_list("methods", ["occlusion", "grad_input", "rollout"],
                             "Explanation methods.")
_TITLES = flags.DEFINE_string("titles", None, "Item-title file (default: the run's data).")
_HISTORY_SHOWN = flags.DEFINE_integer("history_shown", 5, "Latest history items printed.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of text.")
_EXPORT_TO = flags.DEFINE_string("export_to", None, "Write an export of --workdir here.")
_PLATFORMS = flags.DEFINE_list("platforms", ["cpu", "cuda"], "Export: platforms to lower for.")


def _label(entry: dict) -> str:
  return f"{entry['item']} ({entry['title']})" if entry.get("title") else str(entry["item"])


def explain_entries(rec, history: np.ndarray, results: list[dict], methods, top: int) -> list:
  """Per recommended item: {method: [{"item", "title"?, "contribution", "share"}]}."""
  from seqrec_jax.infer import explain as explain_lib  # pylint: disable=import-outside-toplevel
  targets = np.array([rec.items.get(r["item"]) for r in results], np.int32)
  if targets.size == 0:
    return []
  e = explain_lib.explain(rec.model, rec.params, history, targets, rec.num_items, rec.max_len,
                          methods=tuple(methods))
  out = []
  for row in range(targets.size):
    views = {}
    for m in methods:
      if m == "rollout" and e.rollout is None:
        continue
      views[m] = [{**rec.describe(item), "contribution": float(c), "share": float(s)}
                  for item, c, s in explain_lib.top_contributors(e.items, e.view(m, row), top)]
    out.append(views)
  return out


def recommend_for(rec, users, history, k, exclude_seen, exclude, allow, explain, methods,
                  top, history_shown: int = 5, times=None) -> list[dict]:
  """JSON-able results, one per user (or one for the ad-hoc history)."""
  from seqrec_jax.infer.recommend import Request  # pylint: disable=import-outside-toplevel
  requests = ([Request(user=u, k=k, exclude_seen=exclude_seen, exclude=exclude, allow=allow)
               for u in users] if users else
              [Request(history=history, k=k, exclude_seen=exclude_seen, exclude=exclude,
                       allow=allow, times=times)])
  prepared = [rec.prepare(r) for r in requests]
  lists = rec.run_prepared(prepared)
  results = []
  for req, p, items in zip(requests, prepared, lists):
    entry = {"user": req.user, "history_length": int(p.history.size),
             "history_tail": [rec.describe(int(i)) for i in p.history[-history_shown:]],
             "recommendations": items}
    if explain:
      for item, views in zip(items, explain_entries(rec, p.history, items, methods, top)):
        item["because"] = views
    results.append(entry)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _EXPORT_TO.value:
    from seqrec_jax.infer.export import export_recommender  # pylint: disable=import-outside-toplevel
    if not _WORKDIR.value:
      raise app.UsageError("--export_to needs --workdir")
    meta = export_recommender(_WORKDIR.value, _EXPORT_TO.value, k=max(_K.value, 100),
                              platforms=tuple(_PLATFORMS.value))
    print(json.dumps(meta, indent=2))
    return
  if bool(_WORKDIR.value) == bool(_EXPORT.value):
    raise app.UsageError("give exactly one of --workdir or --export")
  if bool(_USER.value) == bool(_HISTORY.value):
    raise app.UsageError("give exactly one of --user or --history")
  from seqrec_jax.infer import recommend as rec_lib  # pylint: disable=import-outside-toplevel
  titles = rec_lib.load_titles(_TITLES.value) if _TITLES.value else None
  if _EXPORT.value:
    if _EXPLAIN.value:
      raise app.UsageError("--explain needs the model: use --workdir")
    from seqrec_jax.infer.export import load_recommender  # pylint: disable=import-outside-toplevel
    rec = load_recommender(_EXPORT.value)
    if titles is not None:
      rec.titles = titles
  else:
    rec = rec_lib.Recommender.from_workdir(_WORKDIR.value, k_max=max(_K.value, 1),
                                           titles=titles)
  # An unknown user or item id is a KeyError: `cli.run` prints it as one line (exit 2).
  results = recommend_for(rec, _USER.value, _HISTORY.value, _K.value, _EXCLUDE_SEEN.value,
                          _EXCLUDE.value, _ALLOW.value, _EXPLAIN.value, _METHODS.value,
                          _EXPLAIN_TOP.value, _HISTORY_SHOWN.value, times=_TIMES.value)
  if _JSON.value:
    print(json.dumps({"model": rec.info, "version": rec.version, "results": results}, indent=2,
                     default=str))
    return
  print(f"{rec.info.get('model')} ({rec.info.get('kind')}, {rec.info.get('source')}), best step "
        f"{rec.info.get('best_step')}; top {_K.value}"
        + (", history items excluded" if _EXCLUDE_SEEN.value else ""))
  names = {"occlusion": "occlusion", "grad_input": "grad x input", "rollout": "rollout"}
  for r in results:
    who = f"user {r['user']}" if r["user"] is not None else "history"
    print(f"\n{who}: {r['history_length']} items; latest: "
          + ", ".join(_label(e) for e in r["history_tail"]))
    if not r["recommendations"]:
      print("  (no item left after the exclusions)")
    for rank, item in enumerate(r["recommendations"], 1):
      print(f"  {rank:2d}. {_label(item)}  score {item['score']:.3f}")
      for m, contributors in item.get("because", {}).items():
        shown = "; ".join(f"{_label(c)} {100 * c['share']:+.0f}%" for c in contributors)
        print(f"        {names.get(m, m) + ':':14s}{shown}")


if __name__ == "__main__":
  cli.run(main)
