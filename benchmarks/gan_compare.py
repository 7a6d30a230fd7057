"""MLE alone vs MLE + adversarial fine-tuning vs the discriminator as recommender.

For each dataset: one MLE run of the generator (SASRec), then two adversarial runs that
both start from that same MLE checkpoint: (1) G fine-tuned against the configured
discriminator, recommending with G; (2) ELECRec-style, a "dot" discriminator trained on
every position against G's replacements and used as the recommender. All three train
through the engine (`adversarial.pretrain_generator`, `adversarial.train_gan`), and
each model is the one the engine picked on validation, read back with
`seqrec_jax.infer.restore`; everything below is on the test split: NDCG@10 and HR@10
(full ranking, from each run's own final test evaluation), coverage@10 (share of the
catalogue in anyone's top-10) and the mean training popularity of the recommended
items. Writes `gan_compare<tag>.md` / `.json` (with the code revision, and each run's
own revision) and one `gan_compare<tag>_<dataset>.png` of training curves per dataset.

Configs: configs/gan_<dataset>.py[:--variant] per dataset, then `--config.a.b=v`
(every dataset), then `--<dataset>.a.b=v` (that dataset only); both are parsed by
ml_collections against the base config, so an unknown key fails by name.

  # about 18 minutes on 2 CPU cores (estimate in the docstring of `main`):
  python benchmarks/gan_compare.py --datasets=ml1m,toys --workdir=runs/gan_compare \\
      --config.loss.name=bce --config.train.num_epochs=20 --config.train.eval_every_epochs=5 \\
      --config.gan.epochs=4 --config.gan.eval_every_epochs=1 --ml1m.model.max_len=50 \\
      --toys.model.max_len=20 --toys.train.num_epochs=10 --toys.gan.epochs=2
  # tiny check:
  python benchmarks/gan_compare.py --datasets=synthetic --variant=smoke --workdir=/tmp/gan_cmp
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
import ml_collections  # noqa: E402
from absl import flags  # noqa: E402

from configs import gan_ml1m, gan_synthetic, gan_toys  # noqa: E402
from seqrec_jax import cli, metrics, models  # noqa: E402
from seqrec_jax import config as config_lib  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.data.load import load_dataset  # noqa: E402
from seqrec_jax.infer import restore  # noqa: E402
from seqrec_jax.train import adversarial  # noqa: E402

CONFIGS = {"ml1m": gan_ml1m, "toys": gan_toys, "synthetic": gan_synthetic}
MODELS = (("mle", "MLE only (SASRec)"), ("adversarial", "MLE + adversarial (G)"),
          ("discriminator", "discriminator as recommender (ELECRec-style)"))

_DATASETS = flags.DEFINE_string("datasets", "ml1m,toys", "comma-separated: ml1m, toys, synthetic")
_WORKDIR = flags.DEFINE_string("workdir", "runs/gan_compare", "training runs go here")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_TAG = flags.DEFINE_string("tag", "", "suffix of the result files")
_VARIANT = flags.DEFINE_string("variant", "", "config variant, e.g. 'smoke' or 'gumbel'")
_NUM_POSITIONS = flags.DEFINE_integer(
    "num_positions", 8, "ELECRec run: positions per sequence G replaces (0 = all)")
_MAX_USERS = flags.DEFINE_integer("max_users", 0, "keep only the first N users")
_MLE_DIR = flags.DEFINE_multi_string(
    "mle_dir", [], "DATASET:WORKDIR: start from this finished training run (e.g. the SASRec "
    "CE run of configs/sasrec_ml1m.py) instead of training an MLE model here; its saved "
    "data/model/task/loss/optim/train/eval settings replace the config's")
_CONFIG = common.define_overrides("config", "--config.a.b=v: any config field, every dataset")
_PER_DATASET = {d: common.define_overrides(d, f"--{d}.a.b=v: any config field, {d} only "
                                              "(after --config.a.b)") for d in CONFIGS}


def mle_dirs() -> dict[str, str]:
  bad = [item for item in _MLE_DIR.value if ":" not in item]
  if bad:
    raise ValueError(f"--mle_dir {bad[0]!r}: expected DATASET:WORKDIR")
  return dict(item.split(":", 1) for item in _MLE_DIR.value)


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


def build_config(dataset: str, workdir: str, mle_dir: str | None) -> ml_collections.ConfigDict:
  cfg = CONFIGS[dataset].get_config(_VARIANT.value)
  cfg = common.with_overrides(cfg, common.overrides(_CONFIG))
  cfg = common.with_overrides(cfg, common.overrides(_PER_DATASET[dataset]))
  if _MAX_USERS.value:
    subset_users(cfg, _MAX_USERS.value, workdir)
  if mle_dir:  # the finished run's own settings, so its checkpoint fits G
    run = config_lib.load_config(mle_dir)
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
def top_items(model, params, arrays: pipeline.EvalArrays, num_items: int, k: int,
              exclude_seen: bool, batch_size: int = 256) -> np.ndarray:
  """[E, k] the model's top-k items (1..num_items) for each evaluated user."""

  @jax.jit
  def topk(params, history, seen):
    scores = model.apply({"params": params}, history, method=models.item_scores)  # [B, V]
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


def model_summary(workdir: str, report: dict, split, counts: np.ndarray) -> dict:
  """The picked model of the run in `workdir` (`infer.restore`: G's base model, or D for
  a discriminator-recommender run) on the test split."""
  run = restore(workdir)
  num_items = split.data.num_items
  arrays = pipeline.eval_arrays(split, "test", run.cfg.model.max_len)
  top = top_items(run.model, run.params, arrays, num_items, 10, run.cfg.eval.exclude_seen)
  prefix = "excl/" if run.cfg.eval.exclude_seen else ""
  test = report["test"]
  return {"ndcg@10": test[prefix + "ndcg@10"], "hr@10": test[prefix + "hr@10"],
          "coverage@10": metrics.coverage_at_k(top, num_items),
          "mean_popularity@10": metrics.mean_popularity(top, counts),
          "best_step": report["best_step"], "users": test["users"],
          "git": common.run_git(report)}


# ---- curves -----------------------------------------------------------------------------------
def plot_curves(dataset: str, dirs: dict, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, axes = plt.subplots(2, 3, figsize=(15, 8))
  ax = axes[0, 0]
  valid = [r for r in common.read_metrics(dirs["mle"]) if r["kind"] == "valid"]
  ax.plot([r["step"] for r in valid], [r["ndcg@10"] for r in valid], "o-", label="MLE")
  ax.set(title=f"{dataset}: MLE validation", xlabel="MLE step", ylabel="NDCG@10")
  ax.legend()
  panels = [(axes[0, 1], "valid", "ndcg@10", "validation NDCG@10"),
            (axes[0, 2], "train", "reward", "mean reward log D(G(z))"),
            (axes[1, 0], "train", "d_acc", "D accuracy (solid real, dashed generated)"),
            (axes[1, 1], "train", "entropy", "entropy of G's item distribution"),
            (axes[1, 2], "train", "coverage", "catalogue coverage of G's samples")]
  for name in ("adversarial", "discriminator"):
    records = common.read_metrics(dirs[name])
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
def train_or_reuse(name: str, cfg, workdir: str) -> tuple[dict, float, bool]:
  """(the run's report, its seconds, reused?): a finished run's final.json is reused (it
  keeps the revision it was made with); otherwise the engine trains (or resumes) it."""
  report = common.read_final(workdir)
  if report is not None:
    print(f"==== {name}: reusing {workdir}/final.json", flush=True)
    return report, report.get("train_seconds", 0.0), True
  print(f"==== {name} ({workdir}) ====", flush=True)
  t = time.time()
  if name == "mle":
    report = adversarial.pretrain_generator(cfg, workdir)
  else:
    report = adversarial.train_gan(cfg, workdir)
  if "interrupted_at_step" in report:
    raise RuntimeError(f"the {name} run in {workdir} was interrupted "
                       f"({report.get('reason', '')}); run the same command again to resume")
  return report, time.time() - t, False


def run_dataset(dataset: str) -> dict:
  root = os.path.abspath(os.path.join(_WORKDIR.value, dataset))
  mle_dir = mle_dirs().get(dataset)
  cfg = build_config(dataset, root, mle_dir)
  dirs = {"mle": os.path.abspath(mle_dir) if mle_dir else os.path.join(root, "mle"),
          "adversarial": os.path.join(root, "adversarial"),
          "discriminator": os.path.join(root, "discriminator")}
  if mle_dir and common.read_final(dirs["mle"]) is None:
    raise FileNotFoundError(f"--mle_dir {dataset}:{mle_dir} has no final.json")
  configs = {"mle": cfg, **variant_configs(cfg, dirs["mle"], _NUM_POSITIONS.value)}
  runs = {name: train_or_reuse(name, configs[name], dirs[name]) for name, _ in MODELS}
  split = common.load_split(cfg)
  counts = training_counts(split)
  rows = {}
  for name, _ in MODELS:
    report, seconds, reused = runs[name]
    rows[name] = {**model_summary(dirs[name], report, split, counts), "seconds": seconds,
                  "reused": reused, "workdir": dirs[name]}
  png = os.path.join(_OUT.value, f"gan_compare{_TAG.value}_{dataset}.png")
  os.makedirs(_OUT.value, exist_ok=True)
  plot_curves(dataset, dirs, png)
  return {"rows": rows, "curves": os.path.relpath(png, _OUT.value),
          "num_users": split.data.num_users, "num_items": split.data.num_items,
          "config": cfg.to_dict()}


def write_tables(results: dict, meta: dict) -> str:
  lines = ["# GAN comparison: MLE vs MLE + adversarial vs discriminator as recommender", "",
           common.describe(meta), "",
           "Test split, models picked on validation; coverage@10 = share of the catalogue in "
           "anyone's top-10; popularity = mean training count of the top-10 items.", ""]
  for dataset, res in results.items():
    c = res["config"]
    lines += [f"## {dataset} ({res['num_users']} users, {res['num_items']} items; "
              f"max_len {c['model']['max_len']}, d {c['model']['embed_dim']}, loss "
              f"{c['loss']['name']}, MLE epochs {c['train']['num_epochs']}, GAN epochs "
              f"{c['gan']['epochs']}, estimator {c['gan']['estimator']}, gen_len "
              f"{c['gan']['gen_len']}, mle_weight {c['gan']['mle_weight']})", "",
              "| model | NDCG@10 | HR@10 | coverage@10 | mean popularity | picked step | train s "
              "| run's revision |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, label in MODELS:
      r = res["rows"][name]
      lines.append(f"| {label} | {r['ndcg@10']:.4f} | {r['hr@10']:.4f} | "
                   f"{r['coverage@10']:.4f} | {r['mean_popularity@10']:.1f} | "
                   f"{r['best_step']} | {r['seconds']:.0f} | {r['git']}"
                   f"{' (reused)' * r['reused']} |")
    lines += ["", f"Curves: `{res['curves']}`", ""]
  lines.append("Picked step 0 for the adversarial run means validation preferred the MLE "
               "starting point to every adversarially trained checkpoint.")
  return "\n".join(lines) + "\n"


def main(argv) -> None:
  """Runs every dataset and writes the tables.

  Budget of the command in the module docstring, from CPU seconds per step measured on
  the 2-core machine (d=64, 2 blocks, batch 128, BCE; ~25 s to compile each GAN step):
  ml1m (23 steps/epoch, max_len 50): MLE 0.29 s/step, G+D step 1.1 s (gen_len 3),
  ELECRec step 0.77 s -> ~6.5 min; toys (151 steps/epoch, max_len 20): MLE 0.11 s,
  G+D 0.55 s, ELECRec 0.73 s -> ~11 min.
  """
  del argv
  meta = common.results_meta(variant=_VARIANT.value, overrides=common.overrides(_CONFIG),
                             per_dataset={d: common.overrides(h) for d, h in _PER_DATASET.items()
                                          if common.overrides(h)})
  datasets = [d for d in _DATASETS.value.split(",") if d]
  unknown = sorted(set(datasets) - set(CONFIGS))
  if unknown:
    raise ValueError(f"--datasets: unknown {unknown}; expected some of {sorted(CONFIGS)}")
  results = {d: run_dataset(d) for d in datasets}
  stem = os.path.join(_OUT.value, f"gan_compare{_TAG.value}")
  text = write_tables(results, meta)
  common.write_results(stem, {**meta, "datasets": results}, text)
  print(text)


if __name__ == "__main__":
  cli.run(main)
