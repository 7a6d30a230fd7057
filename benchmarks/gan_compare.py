"""MLE alone vs MLE + adversarial fine-tuning vs the discriminator as recommender.

For each dataset: one MLE run of the generator (SASRec), then two adversarial runs that
both start from that same MLE checkpoint: (1) G fine-tuned against the configured
discriminator, recommending with G; (2) ELECRec-style, a "dot" discriminator trained on
every position against G's replacements and used as the recommender. Each model is
the one picked on validation; everything below is on the test split:
NDCG@10 and HR@10 (full ranking, from each run's own final test evaluation),
coverage@10 (share of the catalogue in anyone's top-10) and the mean training
popularity of the recommended items. Writes `gan_compare<tag>.md` / `.json` and one
`gan_compare<tag>_<dataset>.png` of training curves per dataset into --out.

  # about 18 minutes on 2 CPU cores (estimate in the docstring of `main`):
  python benchmarks/gan_compare.py --datasets=ml1m,toys --workdir=runs/gan_compare \\
      --loss=bce --ml1m_max_len=50 --toys_max_len=20 --mle_epochs=20 --mle_eval_every=5 \\
      --gan_epochs=4 --gan_eval_every=1 --set=toys:train.num_epochs=10 --set=toys:gan.epochs=2

Any other config key: --set=gan.gen_len=2 --set=gan.estimator=gumbel (repeatable).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402
import ml_collections  # noqa: E402
from flax import linen as nn  # noqa: E402

from configs import gan_ml1m, gan_synthetic, gan_toys  # noqa: E402
from seqrec_jax import metrics, models  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.data.dataset import leave_one_out  # noqa: E402
from seqrec_jax.data.load import load_dataset  # noqa: E402
from seqrec_jax.models.adversarial import Discriminator  # noqa: E402
from seqrec_jax.train import adversarial, checkpoint, loop, steps  # noqa: E402

CONFIGS = {"ml1m": gan_ml1m, "toys": gan_toys, "synthetic": gan_synthetic}
MODELS = (("mle", "MLE only (SASRec)"), ("adversarial", "MLE + adversarial (G)"),
          ("discriminator", "discriminator as recommender (ELECRec-style)"))


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--datasets", default="ml1m,toys", help="comma-separated: ml1m, toys, synthetic")
  p.add_argument("--workdir", default="runs/gan_compare", help="training runs go here")
  p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
  p.add_argument("--tag", default="", help="suffix of the result files")
  p.add_argument("--variant", default="", help="config variant, e.g. 'smoke' or 'gumbel'")
  p.add_argument("--max_len", type=int, default=0, help="model.max_len (0: the config's)")
  p.add_argument("--ml1m_max_len", type=int, default=0, help="max_len for ml1m only")
  p.add_argument("--toys_max_len", type=int, default=0, help="max_len for toys only")
  p.add_argument("--embed_dim", type=int, default=0)
  p.add_argument("--num_blocks", type=int, default=0)
  p.add_argument("--batch_size", type=int, default=0)
  p.add_argument("--loss", default="", help="ce (full softmax) | bce (sampled, faster on CPU)")
  p.add_argument("--mle_epochs", type=int, default=0, help="train.num_epochs of the MLE run")
  p.add_argument("--mle_eval_every", type=int, default=0)
  p.add_argument("--patience", type=int, default=-1, help="train.patience (MLE)")
  p.add_argument("--gan_epochs", type=int, default=0)
  p.add_argument("--gan_eval_every", type=int, default=0)
  p.add_argument("--gen_len", type=int, default=0)
  p.add_argument("--estimator", default="", help="reinforce | gumbel")
  p.add_argument("--mle_weight", type=float, default=-1.0)
  p.add_argument("--num_positions", type=int, default=8,
                 help="ELECRec run: positions per sequence G replaces (0 = all)")
  p.add_argument("--max_users", type=int, default=0, help="keep only the first N users")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--mle_dir", action="append", default=[], metavar="DATASET:WORKDIR",
                 help="start from this finished training run (e.g. the SASRec CE run of "
                      "configs/sasrec_ml1m.py) instead of training an MLE model here; its "
                      "saved data/model/loss/optim/train settings replace the config's")
  p.add_argument("--set", action="append", default=[], metavar="[DATASET:]KEY=VALUE",
                 help="any config key, e.g. gan.d_lr=3e-4 or toys:train.num_epochs=10 "
                 "(repeatable)")
  args = p.parse_args(argv)
  bad = [item for item in args.mle_dir if ":" not in item]
  if bad:
    p.error(f"--mle_dir {bad[0]!r}: expected DATASET:WORKDIR")
  args.mle_dir = dict(item.split(":", 1) for item in args.mle_dir)  # dataset -> workdir
  return args


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def subset_users(cfg: ml_collections.ConfigDict, max_users: int, workdir: str) -> None:
  """Points cfg.data at a SASRec-format copy of the first `max_users` users."""
  data = load_dataset(cfg.data)
  users = min(max_users, data.num_users)
  path = os.path.join(workdir, f"users{users}.txt")
  if not os.path.exists(path):
    os.makedirs(workdir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
      for u in range(users):
        f.writelines(f"{u + 1} {i}\n" for i in data.sequence(u))
    os.replace(path + ".tmp", path)
  cfg.data.format, cfg.data.path, cfg.data.time_path = "sasrec", path, ""
  cfg.data.min_rating, cfg.data.user_core, cfg.data.item_core = -1.0, 0, 0


def build_config(dataset: str, args: argparse.Namespace, workdir: str
                 ) -> ml_collections.ConfigDict:
  cfg = CONFIGS[dataset].get_config(args.variant)
  max_len = {"ml1m": args.ml1m_max_len, "toys": args.toys_max_len}.get(dataset) or args.max_len
  for key, value in [("model.max_len", max_len), ("model.embed_dim", args.embed_dim),
                     ("model.num_blocks", args.num_blocks), ("train.batch_size", args.batch_size),
                     ("loss.name", args.loss), ("train.num_epochs", args.mle_epochs),
                     ("train.eval_every_epochs", args.mle_eval_every),
                     ("gan.epochs", args.gan_epochs), ("gan.eval_every_epochs", args.gan_eval_every),
                     ("gan.gen_len", args.gen_len), ("gan.estimator", args.estimator)]:
    if value:
      section, field = key.split(".")
      cfg[section][field] = value
  if args.patience >= 0:
    cfg.train.patience = args.patience
  if args.mle_weight >= 0:
    cfg.gan.mle_weight = args.mle_weight
  cfg.seed = args.seed
  for item in args.set:
    key, _, value = item.partition("=")
    if ":" in key:  # dataset:section.field=value applies to that dataset only
      only, key = key.split(":", 1)
      if only != dataset:
        continue
    section, field = key.split(".")
    if field not in cfg[section]:
      raise ValueError(f"--set {item}: config.{key} does not exist")
    cfg[section][field] = _literal(value)  # ConfigDict rejects a value of the wrong type
  if args.max_users:
    subset_users(cfg, args.max_users, workdir)
  if dataset in args.mle_dir:  # the finished run's own settings, so its checkpoint fits G
    run = loop.load_config(args.mle_dir[dataset])
    for section in ("data", "model", "task", "loss", "optim", "train", "eval"):
      cfg[section] = run[section]
    cfg.seed = run.seed
  cfg.gan.enabled = True
  return cfg


def variant_configs(cfg: ml_collections.ConfigDict, mle_dir: str, num_positions: int) -> dict:
  adv = ml_collections.ConfigDict(cfg.to_dict())
  adv.gan.pretrained_dir = mle_dir
  adv.gan.recommender = "generator"
  disc = ml_collections.ConfigDict(adv.to_dict())
  disc.gan.layout, disc.gan.d_head, disc.gan.recommender = "positions", "dot", "discriminator"
  disc.gan.num_positions = num_positions
  return {"adversarial": adv, "discriminator": disc}


# ---- top-10 lists of a picked model --------------------------------------------------------
def _restore(model: nn.Module, init, workdir: str):
  boxed = jax.eval_shape(init, jax.random.PRNGKey(0))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          nn.meta.unbox(boxed))
  ckpts = checkpoint.Checkpoints(workdir)
  try:
    params, _ = ckpts.restore_best(abstract)
  finally:
    ckpts.close()
  return params


def top_items(model: nn.Module, params, arrays: pipeline.EvalArrays, num_items: int, k: int,
              exclude_seen: bool, batch_size: int = 256) -> np.ndarray:
  """[E, k] the model's top-k items (1..num_items) for each evaluated user."""

  @jax.jit
  def topk(params, history, seen):
    scores = model.apply({"params": params}, history, method=steps.item_scores)  # [B, V]
    return metrics.top_k_items(scores, k, num_items, seen if exclude_seen else None)

  out = []
  n = len(arrays)
  for start in range(0, n, batch_size):
    rows = np.minimum(np.arange(start, start + batch_size), n - 1)  # fixed shapes
    out.append(np.asarray(topk(params, arrays.history[rows], arrays.seen[rows])))
  return np.concatenate(out)[:n]


def training_counts(split) -> np.ndarray:
  """[num_items + 1] how often each item occurs in the training part of the split."""
  data = split.data
  parts = [data.items[data.offsets[u]:split.train_end[u]] for u in range(data.num_users)]
  return np.bincount(np.concatenate(parts), minlength=data.num_items + 1)


def model_summary(name: str, cfg, workdir: str, report: dict, split, counts: np.ndarray) -> dict:
  num_items = split.data.num_items
  dummy = np.zeros((1, cfg.model.max_len), np.int32)
  if name == "discriminator":
    _, _, model = adversarial.build_models(cfg, num_items)
    init = lambda r: model.init({"params": r}, dummy, method=Discriminator.init_all)["params"]
  else:
    model = models.build_model(cfg.model, num_items)
    init = lambda r: model.init({"params": r}, dummy)["params"]
  params = _restore(model, init, workdir)
  arrays = pipeline.eval_arrays(split, "test", cfg.model.max_len)
  top = top_items(model, params, arrays, num_items, 10, cfg.eval.exclude_seen)
  prefix = "excl/" if cfg.eval.exclude_seen else ""
  test = report["test"]
  return {"ndcg@10": test[prefix + "ndcg@10"], "hr@10": test[prefix + "hr@10"],
          "coverage@10": metrics.coverage_at_k(top, num_items),
          "mean_popularity@10": metrics.mean_popularity(top, counts),
          "best_step": report["best_step"], "users": test["users"]}


# ---- curves -----------------------------------------------------------------------------------
def _records(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f]


def plot_curves(dataset: str, dirs: dict, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, axes = plt.subplots(2, 3, figsize=(15, 8))
  ax = axes[0, 0]
  valid = [r for r in _records(dirs["mle"]) if r["kind"] == "valid"]
  ax.plot([r["step"] for r in valid], [r["ndcg@10"] for r in valid], "o-", label="MLE")
  ax.set(title=f"{dataset}: MLE validation", xlabel="MLE step", ylabel="NDCG@10")
  ax.legend()
  panels = [(axes[0, 1], "valid", "ndcg@10", "validation NDCG@10"),
            (axes[0, 2], "train", "reward", "mean reward log D(G(z))"),
            (axes[1, 0], "train", "d_acc", "D accuracy (solid real, dashed generated)"),
            (axes[1, 1], "train", "entropy", "entropy of G's item distribution"),
            (axes[1, 2], "train", "coverage", "catalogue coverage of G's samples")]
  for name in ("adversarial", "discriminator"):
    records = _records(dirs[name])
    for ax, kind, key, title in panels:
      rows = [r for r in records if r["kind"] == kind]
      steps = [r["step"] for r in rows]
      if key == "d_acc":
        line, = ax.plot(steps, [r["d_acc_real"] for r in rows], "-", label=name)
        ax.plot(steps, [r["d_acc_fake"] for r in rows], "--", color=line.get_color())
      else:
        ax.plot(steps, [r[key] for r in rows], "o-" if kind == "valid" else "-", label=name)
      ax.set(title=title, xlabel="adversarial step")
      ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# ---- main -----------------------------------------------------------------------------------
def run_dataset(dataset: str, args: argparse.Namespace) -> dict:
  root = os.path.abspath(os.path.join(args.workdir, dataset))
  cfg = build_config(dataset, args, root)
  mle_dir = args.mle_dir.get(dataset)
  dirs = {"mle": os.path.abspath(mle_dir) if mle_dir else os.path.join(root, "mle"),
          "adversarial": os.path.join(root, "adversarial"),
          "discriminator": os.path.join(root, "discriminator")}
  seconds, reports = {}, {}
  t = time.time()
  reports["mle"] = adversarial.pretrain_generator(cfg, dirs["mle"])
  seconds["mle"] = reports["mle"].get("train_seconds", 0.0) if mle_dir else time.time() - t
  if "interrupted_at_step" in reports["mle"]:
    raise RuntimeError("train.max_steps_this_run interrupted the MLE run; unset it")
  for name, vcfg in variant_configs(cfg, dirs["mle"], args.num_positions).items():
    print(f"==== {dataset}: {name} ====", flush=True)
    t = time.time()
    reports[name] = adversarial.train_gan(vcfg, dirs[name])
    seconds[name] = time.time() - t
  split = leave_one_out(load_dataset(cfg.data), cfg.data.leave_last_k)
  counts = training_counts(split)
  rows = {}
  for name, _ in MODELS:
    mcfg = variant_configs(cfg, dirs["mle"], args.num_positions).get(name, cfg)
    rows[name] = model_summary(name, mcfg, dirs[name], reports[name], split, counts)
    rows[name]["seconds"] = seconds[name]
  os.makedirs(args.out, exist_ok=True)
  png = os.path.join(args.out, f"gan_compare{args.tag}_{dataset}.png")
  plot_curves(dataset, dirs, png)
  return {"rows": rows, "curves": os.path.relpath(png, args.out),
          "num_users": split.data.num_users, "num_items": split.data.num_items,
          "config": cfg.to_dict()}


def write_tables(results: dict, args: argparse.Namespace, argv: list[str]) -> str:
  lines = ["# GAN comparison: MLE vs MLE + adversarial vs discriminator as recommender", "",
           f"Command: `python benchmarks/gan_compare.py {' '.join(argv)}`  ",
           f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
           f"JAX {jax.__version__} on {jax.devices()[0].platform}  ",
           "Test split, models picked on validation; coverage@10 = share of the catalogue in "
           "anyone's top-10; popularity = mean training count of the top-10 items.", ""]
  for dataset, res in results.items():
    c = res["config"]
    lines += [f"## {dataset} ({res['num_users']} users, {res['num_items']} items; "
              f"max_len {c['model']['max_len']}, d {c['model']['embed_dim']}, loss "
              f"{c['loss']['name']}, MLE epochs {c['train']['num_epochs']}, GAN epochs "
              f"{c['gan']['epochs']}, estimator {c['gan']['estimator']}, gen_len "
              f"{c['gan']['gen_len']}, mle_weight {c['gan']['mle_weight']})", "",
              "| model | NDCG@10 | HR@10 | coverage@10 | mean popularity | picked step | train s |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, label in MODELS:
      r = res["rows"][name]
      lines.append(f"| {label} | {r['ndcg@10']:.4f} | {r['hr@10']:.4f} | "
                   f"{r['coverage@10']:.4f} | {r['mean_popularity@10']:.1f} | "
                   f"{r['best_step']} | {r['seconds']:.0f} |")
    lines += ["", f"Curves: `{res['curves']}`", ""]
  lines.append("Picked step 0 for the adversarial run means validation preferred the MLE "
               "starting point to every adversarially trained checkpoint.")
  return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
  """Runs every dataset and writes the tables.

  Budget of the command in the module docstring, from CPU seconds per step measured on
  the 2-core machine (d=64, 2 blocks, batch 128, BCE; ~25 s to compile each GAN step):
  ml1m (23 steps/epoch, max_len 50): MLE 0.29 s/step, G+D step 1.1 s (gen_len 3),
  ELECRec step 0.77 s -> ~6.5 min; toys (151 steps/epoch, max_len 20): MLE 0.11 s,
  G+D 0.55 s, ELECRec 0.73 s -> ~11 min.
  """
  argv = sys.argv[1:] if argv is None else argv
  args = parse_args(argv)
  results = {d: run_dataset(d, args) for d in filter(None, args.datasets.split(","))}
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, f"gan_compare{args.tag}.json"), "w") as f:
    json.dump(results, f, indent=2)
  text = write_tables(results, args, argv)
  with open(os.path.join(args.out, f"gan_compare{args.tag}.md"), "w") as f:
    f.write(text)
  print(text)
  return results


if __name__ == "__main__":
  from absl import logging  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)
  main()
