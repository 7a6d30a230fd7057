"""The config reference (docs/config_reference.md), generated from `config.base_config()`.

  python -m seqrec_jax.config_doc                 # writes docs/config_reference.md
  python -m seqrec_jax.config_doc --out=-         # prints it
  python -m seqrec_jax.config_doc --check         # exits 1 if the file is out of date

One table per section of `base_config()` (key, default, type, description). The
descriptions are the comments in `seqrec_jax/config.py` itself: the trailing `# ...`
of a field's assignment and the comment lines directly above it (a block ending in `:`
heads a group and is not used). Fields that `base_config` adds without a literal
assignment (model options declared by `register_model(options=...)`) take the comments
of the same-named field in the model class that declares them; a few fields still
without comments take `FALLBACK_DESCRIPTIONS`. The allowed values of
enumerated fields come from `config.choices()` when it exists, and otherwise from any
`*CHOICES*` mapping in `seqrec_jax.config`.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import logging
import re
import sys
import textwrap
import tokenize
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections

from seqrec_jax import config as config_lib

DEFAULT_OUT = "docs/config_reference.md"
COMMAND = "python -m seqrec_jax.config_doc"
TOP_LEVEL = "(top level)"

log = logging.getLogger(__name__)


# Descriptions of fields that config.py leaves uncommented, used only while it does (a
# comment there always wins). Better moved into config.py as comments, then removed here.
FALLBACK_DESCRIPTIONS = {
    "seed": "random seed of parameter init, dropout and data order",
    "data.path": "the interaction file (a relative path is read from data.root)",
    "data.user_col": "table: column of user ids",
    "data.item_col": "table: column of item ids",
    "data.time_col": "table: column of timestamps (integers, numbers or ISO dates)",
    "data.rating_col": 'table: column of ratings ("" = none)',
    "data.sep": "table: CSV field separator",
    "data.user_core": "k-core: keep users with >= this many interactions, iterated with "
                      "item_core (0 = off)",
    "data.item_core": "k-core: keep items with >= this many interactions (0 = off)",
    "data.cache_dir": 'preprocessed datasets are cached here as .npz ("" = no cache); '
                      "data.download writes here",
    "data.synthetic.num_users": "synthetic: users",
    "data.synthetic.num_items": "synthetic: catalogue size",
    "data.synthetic.num_topics": "synthetic: hidden topics, each with its own item chain",
    "data.synthetic.min_len": "synthetic: shortest history",
    "data.synthetic.max_len": "synthetic: longest history",
    "data.synthetic.follow_prob": "synthetic: probability that the next item follows the "
                                  "planted chain (else a popular item of the topic)",
    "data.synthetic.zipf": "synthetic: exponent of item popularity within a topic",
    "data.synthetic.seed": "synthetic: generator seed",
    "model.max_len": "window: the latest max_len items of a history",
    "model.embed_dim": "width D of the item embeddings and the blocks",
    "model.num_blocks": "Transformer blocks",
    "model.num_heads": "attention heads (must divide embed_dim)",
    "model.mlp_dim": "hidden width of each block's feed-forward layer",
    "model.dropout": "dropout inside the blocks",
    "model.emb_dropout": "dropout on the input embeddings",
    "loss.num_negatives": "sampled losses (bce): negatives per target",
    "optim.lr": "peak learning rate (AdamW)",
    "optim.b1": "AdamW beta1",
    "optim.b2": "AdamW beta2",
    "optim.weight_decay": "AdamW decoupled weight decay (matrices only)",
    "optim.clip_norm": "gradients are clipped to this global norm",
    "optim.warmup_steps": "linear warm-up from 0 to lr over this many steps",
    "optim.final_lr_frac": "cosine: the final learning rate as a fraction of lr",
    "train.num_epochs": "passes over the training users",
    "train.log_every_steps": "log the training loss every this many steps",
    "train.eval_every_epochs": "validate every this many epochs",
    "train.checkpoint_every_epochs": "save a resumable checkpoint every this many epochs",
    "train.max_to_keep": "resumable checkpoints kept in checkpoints/",
    "eval.ks": "cut-offs k of HR@k, NDCG@k and MRR@k",
    "eval.batch_size": "users per evaluation batch (global)",
    "eval.select_metric": "validation metric that picks the best checkpoint: hr|ndcg|mrr@k "
                          "with k in eval.ks",
    "gan.enabled": "run the adversarial loop instead of plain training",
    "gan.eval_every_epochs": "validate every this many adversarial epochs",
    "gan.g_lr": "generator learning rate",
    "gan.d_lr": "discriminator learning rate",
    "gan.warmup_steps": "learning-rate warm-up steps of the adversarial phase",
    "gan.baseline_decay": "decay of the moving-average (ema) baseline",
    "gan.tau_end": "final gumbel temperature",
    "gan.tau_decay_steps": "steps over which the gumbel temperature decays",
    "gan.noise_dim": "size of the generator's noise vector",
    "gan.noise_std": "standard deviation of the generator's noise",
    "gan.d_embed_dim": "discriminator width",
    "gan.d_num_blocks": "discriminator Transformer blocks",
    "gan.d_num_heads": "discriminator attention heads",
    "gan.d_mlp_dim": "discriminator feed-forward width",
    "gan.d_dropout": "discriminator dropout",
    "mesh.shape": "devices along each mesh axis; one -1 takes the remaining devices",
    "mesh.axes": "mesh axis names: data (batch) and model (item-table rows)",
    "mesh.num_processes": "processes in a multi-process run",
    "mesh.process_id": "this process's index in a multi-process run",
}


# ---------------------------------------------------------------------- source comments

def _comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
  """({line: trailing comment}, {line: full-line comment}) of `source`, text without '#'."""
  lines = source.splitlines()
  trailing: dict[int, str] = {}
  full: dict[int, str] = {}
  try:
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
      if tok.type == tokenize.COMMENT:
        row, col = tok.start
        text = tok.string.lstrip("#").strip()
        (full if not lines[row - 1][:col].strip() else trailing)[row] = text
  except (tokenize.TokenError, IndentationError, SyntaxError):
    pass
  return trailing, full


def _comment_above(full: dict[int, str], lines: list[str], lineno: int) -> str:
  """The block of full-line comments directly above line `lineno` (1-based), joined;
  "" when there is none or it ends in ':' (a heading for a group of fields)."""
  block = []
  row = lineno - 1
  while row >= 1 and row in full and lines[row - 1].strip().startswith("#"):
    block.append(full[row])
    row -= 1
  block.reverse()
  if not block or block[-1].endswith(":"):
    return ""
  return " ".join(b for b in block if b)


def _join(*parts: str) -> str:
  return " ".join(p for p in parts if p)


def _key_of(node: ast.AST, root: str | None) -> list[str] | None:
  """`c.a.b` / `c["a"]["b"]` -> ["a", "b"] (root name `root`, or any name if None)."""
  path: list[str] = []
  while True:
    if isinstance(node, ast.Attribute):
      path.append(node.attr)
      node = node.value
    elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
          and isinstance(node.slice.value, str)):
      path.append(node.slice.value)
      node = node.value
    else:
      break
  if not isinstance(node, ast.Name) or (root is not None and node.id != root) or not path:
    return None
  return path[::-1]


def _dict_keywords(value: ast.AST) -> list[tuple[str, int]] | None:
  """The (key, line) of `ConfigDict(dict(k=v, ...))`, `ConfigDict({"k": v})`, `dict(...)`."""
  if isinstance(value, ast.Call) and value.args and not value.keywords:
    inner = _dict_keywords(value.args[0])
    if inner is not None:
      return inner
  if isinstance(value, ast.Call) and value.keywords:
    return [(k.arg, k.value.lineno) for k in value.keywords if k.arg]
  if isinstance(value, ast.Dict):
    return [(k.value, k.lineno) for k in value.keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str)]
  return None


def source_descriptions(fn=None) -> tuple[dict[str, str], dict[str, int]]:
  """({dotted key: description}, {dotted key: source order}) from the assignments in
  the source of `fn` (default `config.base_config`)."""
  fn = fn or config_lib.base_config
  try:
    source = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(source)
  except (OSError, TypeError, SyntaxError) as e:
    log.warning("config_doc: cannot read the source of %s (%s); no descriptions", fn, e)
    return {}, {}
  lines = source.splitlines()
  trailing, full = _comments(source)
  func = tree.body[0]
  root = None
  if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
    for stmt in func.body:  # the variable the config is built in (`c = ConfigDict()`)
      if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
        root = stmt.targets[0].id
        break
  descriptions: dict[str, str] = {}
  order: dict[str, int] = {}

  def add(key: str, text: str, pos: int) -> None:
    order.setdefault(key, pos)
    if text and not descriptions.get(key):
      descriptions[key] = text

  for stmt in ast.walk(tree):
    if not isinstance(stmt, (ast.Assign, ast.AnnAssign)):
      continue
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    keys = []
    for target in targets:
      for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
        k = _key_of(t, root)
        if k:
          keys.append(".".join(k))
    if not keys:
      continue
    first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
    trail = trailing.get(first, "") if last > first else trailing.get(last, "")
    text = _join(_comment_above(full, lines, first), trail)
    for i, key in enumerate(keys):
      add(key, text, first * 1000 + i)
    sub = _dict_keywords(stmt.value) if stmt.value is not None else None
    for i, (name, line) in enumerate(sub or []):
      alone = sum(1 for _, l in sub if l == line) == 1  # one key on that line: its comment
      for key in keys:
        add(f"{key}.{name}", trailing.get(line, "") if alone else "", first * 1000 + i)
  return descriptions, order


def _class_field_comments(cls: type) -> dict[str, str]:
  """{field: its comments} of the annotated fields in the body of class `cls`."""
  try:
    source = textwrap.dedent(inspect.getsource(cls))
    tree = ast.parse(source)
  except (OSError, TypeError, SyntaxError):
    return {}
  lines = source.splitlines()
  trailing, full = _comments(source)
  out = {}
  body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
  fields = set(getattr(cls, "__dataclass_fields__", {})) | set(getattr(cls, "__annotations__", {}))
  for stmt in body:
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
      above = _comment_above(full, lines, stmt.lineno)
      named = re.match(r"(\w+):", above)
      if named and named.group(1) != stmt.target.id and named.group(1) in fields:
        above = ""  # `# other_field: ...` is about another field (e.g. an inherited one)
      text = _join(above, trailing.get(stmt.end_lineno or stmt.lineno, ""))
      if text:
        out[stmt.target.id] = text
  return out


def model_option_descriptions() -> dict[str, str]:
  """{"model.<option>": description} for the options of the registered models (the
  comments on the field in each declaring class, named by model); {} without a registry."""
  try:
    from seqrec_jax import models  # pylint: disable=import-outside-toplevel
    entries = list(models.MODELS)
  except Exception:  # pylint: disable=broad-except (no registry: nothing to add)
    return {}
  texts: dict[str, list[str]] = {}
  owners: dict[str, list[str]] = {}
  for entry in sorted(entries, key=lambda e: e.name):
    options = (getattr(entry, "meta", None) or {}).get("options") or {}
    comments = _class_field_comments(entry.obj)
    for key in options:
      owners.setdefault(key, []).append(entry.name)
      if comments.get(key) and comments[key] not in texts.setdefault(key, []):
        texts[key].append(comments[key])
  return {f"model.{key}": _join(f"Option of model {', '.join(names)}.",
                                " ".join(texts.get(key, [])))
          for key, names in owners.items()}


# ----------------------------------------------------------------------------- choices

def allowed_values(cfg: ml_collections.ConfigDict | None = None) -> dict[str, tuple]:
  """{dotted key: allowed values}: `config.choices()` if the module has it, merged over
  every `*CHOICES*` mapping in it (keys `section.field`, or bare fields of the section
  the mapping's name gives, e.g. `_GAN_CHOICES`)."""
  cfg = cfg if cfg is not None else config_lib.base_config()
  sections = {k for k, v in cfg.items() if isinstance(v, ml_collections.ConfigDict)}
  out: dict[str, tuple] = {}
  for name, value in sorted(vars(config_lib).items()):
    if "CHOICES" not in name.upper() or not isinstance(value, Mapping):
      continue
    prefix = name.strip("_").upper().replace("CHOICES", "").strip("_").lower()
    for key, allowed in value.items():
      if not isinstance(key, str):
        continue
      full = key if "." in key else (f"{prefix}.{key}" if prefix in sections else None)
      if full:
        out[full] = _as_tuple(allowed)
  fn = getattr(config_lib, "choices", None)
  if callable(fn):
    try:
      mapping = fn()
    except Exception as e:  # pylint: disable=broad-except (fall back to the mappings)
      log.warning("config_doc: config.choices() failed (%s: %s)", type(e).__name__, e)
    else:
      if isinstance(mapping, Mapping):
        out.update({k: _as_tuple(v) for k, v in mapping.items() if isinstance(k, str)})
  return {k: v for k, v in out.items() if v is not None}


def _as_tuple(values: Any) -> tuple | None:
  try:
    return tuple(values) if not isinstance(values, str) else None
  except TypeError:
    return None


# ---------------------------------------------------------------------------- rendering

def _flatten(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[tuple[str, Any]]:
  rows = []
  for key, value in cfg.items():
    if isinstance(value, ml_collections.ConfigDict):
      rows.extend(_flatten(value, f"{prefix}{key}."))
    else:
      rows.append((f"{prefix}{key}", value))
  return rows


def config_keys(cfg: ml_collections.ConfigDict | None = None) -> list[str]:
  """Every leaf key of `base_config()` as `section.field` (nested: `a.b.c`)."""
  return [k for k, _ in _flatten(cfg if cfg is not None else config_lib.base_config())]


def _literal(value: Any) -> str:
  """Python syntax, strings in double quotes (as in config.py)."""
  if isinstance(value, str):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
  if isinstance(value, tuple):
    inner = ", ".join(_literal(v) for v in value)
    return f"({inner},)" if len(value) == 1 else f"({inner})"
  if isinstance(value, list):
    return "[" + ", ".join(_literal(v) for v in value) + "]"
  return repr(value)


def _sentence(text: str) -> str:
  return text if not text or text.endswith((".", ":", "!", "?")) else text + "."


def _type_name(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    kinds = sorted({type(v).__name__ for v in value})
    return f"{type(value).__name__}[{kinds[0]}, ...]" if len(kinds) == 1 else type(value).__name__
  return "None" if value is None else type(value).__name__


def _cell(text: str) -> str:
  return text.replace("|", "\\|").replace("\n", " ")


def render_config_reference() -> str:
  """The config reference as markdown: one table per section of `base_config()`."""
  cfg = config_lib.base_config()
  descriptions, order = source_descriptions()
  for extra in (model_option_descriptions(), FALLBACK_DESCRIPTIONS):
    for key, text in extra.items():
      if not descriptions.get(key):
        descriptions[key] = text
  choices = allowed_values(cfg)

  sections: dict[str, list[tuple[str, Any]]] = {TOP_LEVEL: []}
  for key, value in cfg.items():
    if isinstance(value, ml_collections.ConfigDict):
      sections[key] = _flatten(value, f"{key}.")
    else:
      sections[TOP_LEVEL].append((key, value))
  unknown = 10 ** 12  # keys the source does not assign literally go last, in key order
  names = sorted(sections, key=lambda s: (s != TOP_LEVEL, order.get(s, unknown), s))

  out = [
      "# Config reference",
      "",
      f"Generated by `{COMMAND}` from `seqrec_jax/config.py` (`base_config()`); do not "
      "edit by hand: change the config and its comments, then rerun the command.",
      "",
      "Every key can be overridden on the command line as `--config.<key>=<value>` "
      "(tuples as strings: `--config.mesh.shape='(4,2)'`). An unknown key is rejected "
      "by name, and a value outside a key's allowed values names the key and the values.",
      "",
  ]
  out.append("Sections: " + ", ".join(f"[`{s}`](#{s})" if s != TOP_LEVEL else
                                     "[top level](#top-level)" for s in names) + ".")
  out.append("")
  for section in names:
    rows = sorted(sections[section], key=lambda kv: (order.get(kv[0], unknown), kv[0]))
    if not rows:
      continue
    out.append("## top level" if section == TOP_LEVEL else f"## {section}")
    out.append("")
    if descriptions.get(section):
      out += [descriptions[section], ""]
    out += ["| key | default | type | description |", "| --- | --- | --- | --- |"]
    for key, value in rows:
      text = descriptions.get(key, "")
      registry = getattr(config_lib, "REGISTERED_FIELDS", {}).get(key)
      if registry:  # named by a registry: the list grows with every registered component
        text = _join(_sentence(text), f"Allowed: a name registered in `{registry}`.")
      elif key in choices:
        allowed = ", ".join(f"`{_literal(v)}`" for v in choices[key])
        text = _join(_sentence(text), f"Allowed: {allowed}.")
      out.append(f"| `{key}` | `{_cell(_literal(value))}` | {_cell(_type_name(value))} | "
                 f"{_cell(text)} |")
    out.append("")
  return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=DEFAULT_OUT,
                      help=f"file to write ('-' prints it); default {DEFAULT_OUT}")
  parser.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 if --out differs from the generated text")
  args = parser.parse_args(argv)
  text = render_config_reference()
  if args.out == "-":
    sys.stdout.write(text)
    return 0
  path = Path(args.out)
  if args.check:
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current != text:
      print(f"{path} is out of date; regenerate it with: {COMMAND} --out={path}",
            file=sys.stderr)
      return 1
    return 0
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
