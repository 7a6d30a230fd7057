"""`python -m seqrec_jax.sweep --config=configs/x.py --space=SPACE --workdir=DIR
[--sampler=tpe|random|grid --trials=N --seed=0 --config.a.b=v ...]`.

A hyper-parameter search that makes "picked on validation" mechanical. Optuna (the
`sweep` extra) proposes each trial's values; every trial is a normal engine run in
`DIR/trials/NNNN` (its config.json and metrics.jsonl, i.e. its validation curve, are
kept) with `train.test_at_end=False`, so no trial ever evaluates the test split. The
objective is the trial's best validation value of `eval.select_metric`. When the
trials are done, the winner alone is tested once: `DIR/result.json` (and
`ranks_test.npz` in its trial folder, for standard errors) holds its config, validation
and test figures; `DIR/trials.json` lists every trial's values and validation figure,
never a test figure.

SPACE is JSON, inline or a file path: {"optim.lr": {"low": 1e-4, "high": 1e-2, "log":
true}, "model.dropout": [0.1, 0.2, 0.3], "model.num_blocks": {"low": 1, "high": 3,
"type": "int"}}; a list is a categorical choice (the grid sampler needs lists only).

Resumable: the study lives in `DIR/study.db` (SQLite). Rerunning the command finishes a
trial a kill interrupted (its engine run resumes from its checkpoint, then it is told
to the study), skips finished ones and runs the rest up to `--trials`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import app, flags, logging
from ml_collections import config_flags

from seqrec_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Base config file (configs/*.py).",
                                          lock_config=True)
_SPACE = flags.DEFINE_string("space", None, "Search space: JSON, inline or a file path.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (study, trials, result).")
_SAMPLER = flags.DEFINE_enum("sampler", "tpe", ["tpe", "random", "grid"], "Optuna sampler.")
_TRIALS = flags.DEFINE_integer("trials", 0, "Trials in all (0: the grid's size; needed "
                               "for tpe / random).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampler seed.")
flags.mark_flags_as_required(["config", "space", "workdir"])


def parse_space(text: str) -> dict[str, Any]:
  """The search space from JSON text or a JSON file; errors name the key."""
  if os.path.isfile(text):
    with open(text) as f:
      text = f.read()
  try:
    space = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"--space: not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
  if not isinstance(space, dict) or not space:
    raise ValueError("--space: expected a non-empty JSON object {\"a.b\": [values] | {...}}")
  from seqrec_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from seqrec_jax import config_schema  # pylint: disable=import-outside-toplevel
  known = config_schema.leaves(config_lib.base_config())
  for key, spec in space.items():
    if key not in known:
      raise ValueError(f"--space: {config_schema.unknown_key_message(key)}")
    if isinstance(spec, list):
      if not spec:
        raise ValueError(f"--space: {key}: an empty list of choices")
    elif isinstance(spec, dict):
      if not {"low", "high"} <= set(spec) or set(spec) - {"low", "high", "log", "type", "step"}:
        raise ValueError(f"--space: {key}: a range needs 'low' and 'high' (and optionally "
                         f"'log', 'type': 'int' | 'float', 'step'); got {sorted(spec)}")
      if not spec["low"] < spec["high"]:
        raise ValueError(f"--space: {key}: low={spec['low']} must be < high={spec['high']}")
    else:
      raise ValueError(f"--space: {key}: expected a list of choices or a {{low, high}} range")
  return space


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
  """One value per key of `space` from an Optuna trial."""
  values = {}
  for key, spec in space.items():
    if isinstance(spec, list):
      values[key] = trial.suggest_categorical(key, spec)
    elif spec.get("type") == "int" or (isinstance(spec["low"], int)
                                      and isinstance(spec["high"], int) and "type" not in spec):
      values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]),
                                      step=int(spec.get("step", 1)), log=bool(spec.get("log")))
    else:
      values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                        log=bool(spec.get("log")), step=spec.get("step"))
  return values


def _sampler(name: str, space: dict, seed: int):
  import optuna  # pylint: disable=import-outside-toplevel
  if name == "grid":  # the grid is enqueued point by point (`_enqueue_grid`)
    bad = [k for k, v in space.items() if not isinstance(v, list)]
    if bad:
      raise ValueError(f"--sampler=grid needs lists of choices; {bad} are ranges")
    return optuna.samplers.RandomSampler(seed=seed)
  if name == "random":
    return optuna.samplers.RandomSampler(seed=seed)
  return optuna.samplers.TPESampler(seed=seed)


def _enqueue_grid(study, space: dict) -> None:
  """Every grid point not yet in the study (done, running or queued), in order. (Optuna's
  GridSampler stops the study from inside `tell`, which the ask-and-tell loop here
  cannot take; enqueued points give the same grid.)"""
  import itertools  # pylint: disable=import-outside-toplevel
  import optuna  # pylint: disable=import-outside-toplevel
  state = optuna.trial.TrialState
  have = {tuple(sorted(t.params.items())) if t.params else
          tuple(sorted(t.system_attrs.get("fixed_params", {}).items()))
          for t in study.get_trials(deepcopy=False, states=(state.COMPLETE, state.RUNNING,
                                                           state.WAITING))}
  keys = list(space)
  for combo in itertools.product(*(space[k] for k in keys)):
    point = dict(zip(keys, combo))
    if tuple(sorted(point.items())) not in have:
      study.enqueue_trial(point)


def run_trial(base_cfg, values: dict, trial_dir: str) -> float:
  """Trains one trial (or resumes it); -> its best validation value."""
  # pylint: disable=import-outside-toplevel
  from seqrec_jax.train import engine, mle  # noqa: F401  (mle registers the objective)
  import ml_collections
  cfg = ml_collections.ConfigDict(base_cfg.to_dict())
  cfg.update_from_flattened_dict({**values, "train.test_at_end": False})
  report = engine.run(cfg, trial_dir, "adversarial" if cfg.gan.enabled else "mle")
  if "interrupted_at_step" in report:
    raise KeyboardInterrupt(f"trial in {trial_dir} stopped at step "
                            f"{report['interrupted_at_step']} ({report['reason']})")
  key = ("excl/" if cfg.eval.exclude_seen else "") + cfg.eval.select_metric
  return float(report["valid"][key])


def test_winner(trial_dir: str) -> dict:
  """The one test evaluation of the sweep: the winner's best-on-validation model."""
  # pylint: disable=import-outside-toplevel
  from seqrec_jax import evaluation
  from seqrec_jax.data import pipeline
  from seqrec_jax.infer.restore import restore
  run = restore(trial_dir)
  cfg = run.cfg
  rank_fn = evaluation.jit_rank_step(run.model, run.dataset.num_items, run.params_sh, run.mesh,
                                     top_k=max(cfg.eval.ks))
  arrays = pipeline.eval_arrays(run.split, "test", cfg.model.max_len)
  test, ranks = evaluation.evaluate_stage(
      rank_fn, run.params, arrays, cfg.eval.batch_size, run.mesh, cfg.eval.ks, with_ranks=True,
      num_items=run.dataset.num_items, item_counts=evaluation.train_item_counts(run.split),
      popularity_edges=tuple(cfg.eval.popularity_buckets),
      cold_items=run.split.cold)
  ranks.save(os.path.join(trial_dir, "ranks_test.npz"))
  return {"test": test, "best_step": run.meta.get("step"), "valid": run.meta.get("valid")}


def _write_json(path: str, data: Any) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(data, f, indent=2, default=str)
  os.replace(path + ".tmp", path)


def sweep(base_cfg, space: dict, workdir: str, sampler: str = "tpe", trials: int = 0,
          seed: int = 0) -> dict:
  """Runs (or resumes) the study; -> the result (winner, its validation and test)."""
  import optuna  # pylint: disable=import-outside-toplevel
  from seqrec_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  from seqrec_jax.train.engine import git_revision  # pylint: disable=import-outside-toplevel
  config_lib.validate(base_cfg)
  if sampler == "grid" and not trials:
    trials = 1
    for choices in space.values():
      trials *= len(choices)
  if trials < 1:
    raise ValueError("--trials must be >= 1 for the tpe and random samplers")
  os.makedirs(os.path.join(workdir, "trials"), exist_ok=True)
  spec_path = os.path.join(workdir, "sweep.json")
  spec = {"space": space, "sampler": sampler, "seed": seed, "base_config": base_cfg.to_dict(),
          "metric": base_cfg.eval.select_metric, "exclude_seen": base_cfg.eval.exclude_seen}
  if os.path.exists(spec_path):
    with open(spec_path) as f:
      saved = json.load(f)
    if json.dumps(saved, sort_keys=True, default=str) != json.dumps(spec, sort_keys=True,
                                                                    default=str):
      raise ValueError(f"{spec_path}: this sweep directory holds a different sweep (space, "
                       "sampler, seed or base config); use another --workdir")
  else:
    _write_json(spec_path, spec)
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  study = optuna.create_study(study_name="sweep", direction="maximize", load_if_exists=True,
                              storage=f"sqlite:///{os.path.abspath(workdir)}/study.db",
                              sampler=_sampler(sampler, space, seed))
  if sampler == "grid":
    _enqueue_grid(study, space)
  started, revision = time.time(), git_revision()
  trial_dir = lambda number: os.path.join(workdir, "trials", f"{number:04d}")
  state = optuna.trial.TrialState
  for frozen in study.get_trials(deepcopy=False, states=(state.RUNNING,)):  # killed earlier
    logging.info("sweep: finishing interrupted trial %d", frozen.number)
    study.tell(frozen.number, run_trial(base_cfg, frozen.params, trial_dir(frozen.number)))
  while len(study.get_trials(deepcopy=False, states=(state.COMPLETE,))) < trials:
    trial = study.ask()
    values = suggest(trial, space)
    logging.info("sweep: trial %d %s", trial.number, values)
    try:
      value = run_trial(base_cfg, values, trial_dir(trial.number))
    except KeyboardInterrupt:
      raise  # stays RUNNING: the same command finishes it
    except Exception:
      study.tell(trial, state=state.FAIL)
      raise
    study.tell(trial, value)
    logging.info("sweep: trial %d valid %s %.4f (best so far %.4f, trial %d)", trial.number,
                 base_cfg.eval.select_metric, value, study.best_value, study.best_trial.number)
  done = study.get_trials(deepcopy=False, states=(state.COMPLETE,))
  table = [{"trial": t.number, "values": t.params, "valid": t.value,
            "dir": os.path.relpath(trial_dir(t.number), workdir)} for t in done]
  _write_json(os.path.join(workdir, "trials.json"), table)
  best = study.best_trial
  result_path = os.path.join(workdir, "result.json")
  if os.path.exists(result_path):
    with open(result_path) as f:
      result = json.load(f)
    if result.get("winner") == best.number:
      return result  # tested already: the test split is evaluated once
  tested = test_winner(trial_dir(best.number))
  result = {"winner": best.number, "values": best.params, "valid_objective": best.value,
            "dir": os.path.relpath(trial_dir(best.number), workdir), **tested,
            "trials": len(done), "metric": base_cfg.eval.select_metric, "git": revision,
            "seconds_this_call": time.time() - started}
  _write_json(result_path, result)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  space = parse_space(_SPACE.value)
  result = sweep(_CONFIG.value, space, _WORKDIR.value, _SAMPLER.value, _TRIALS.value,
                 _SEED.value)
  m = result["metric"]
  print(f"winner: trial {result['winner']} {result['values']} valid {m} "
        f"{result['valid_objective']:.4f} ({result['trials']} trials)")
  t = result["test"]
  print(f"test (once, winner only): {m} {t[m]:.4f}, exclude_seen {t['excl/' + m]:.4f} "
        f"({os.path.join(_WORKDIR.value, 'result.json')})")


if __name__ == "__main__":
  cli.run(main)
