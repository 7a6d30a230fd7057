"""The sweep tool: selection on validation only, the test split evaluated once for the
winner and never for the others, every trial's config and validation curve kept, and
a killed sweep resumed (the interrupted trial finished, done trials skipped)."""

import json
import os

import pytest

optuna = pytest.importorskip("optuna")

from seqrec_jax import presets  # noqa: E402
from seqrec_jax.sweep import parse_space, sweep  # noqa: E402


def smoke():
  cfg = presets.default("smoke")
  cfg.train.num_epochs = 1
  return cfg


def records(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow  # two training runs (~30 s)
def test_grid_sweep_tests_only_the_winner_and_resumes(tmp_path):
  space = parse_space('{"optim.lr": [0.0001, 0.01]}')
  workdir = str(tmp_path / "sweep")
  # a sweep killed inside its first trial: the trial is RUNNING in the study
  os.makedirs(workdir)
  study = optuna.create_study(study_name="sweep", direction="maximize",
                              storage=f"sqlite:///{os.path.abspath(workdir)}/study.db",
                              sampler=optuna.samplers.RandomSampler(seed=0))
  study.enqueue_trial({"optim.lr": 0.01})
  interrupted = study.ask()
  interrupted.suggest_categorical("optim.lr", space["optim.lr"])
  result = sweep(smoke(), space, workdir, sampler="grid", seed=0)
  assert result["trials"] == 2
  trials = json.load(open(os.path.join(workdir, "trials.json")))
  assert sorted(t["values"]["optim.lr"] for t in trials) == [0.0001, 0.01]
  assert interrupted.number in [t["trial"] for t in trials]  # finished, not lost
  best = max(trials, key=lambda t: t["valid"])
  assert result["winner"] == best["trial"] and result["valid_objective"] == best["valid"]
  assert "test" not in json.dumps(trials)  # the table never shows a test figure
  for t in trials:
    d = os.path.join(workdir, t["dir"])
    final = json.load(open(os.path.join(d, "final.json")))
    assert final["test"] is None  # no trial evaluated the test split
    kinds = {r["kind"] for r in records(os.path.join(d, "metrics.jsonl"))}
    assert "valid" in kinds and "test" not in kinds  # the validation curve is kept
    assert json.load(open(os.path.join(d, "config.json")))["optim"]["lr"] == t["values"]["optim.lr"]
    has_ranks = os.path.exists(os.path.join(d, "ranks_test.npz"))
    assert has_ranks == (t["trial"] == result["winner"])
  assert 0.0 <= result["test"]["ndcg@10"] <= 1.0
  # rerun: nothing is retrained or retested
  mtime = os.path.getmtime(os.path.join(workdir, "result.json"))
  assert sweep(smoke(), space, workdir, sampler="grid", seed=0) == result
  assert os.path.getmtime(os.path.join(workdir, "result.json")) == mtime


@pytest.mark.parametrize("text,message", [
    ('{"optim.lrr": [1]}', "unknown config key config.optim.lrr; did you mean config.optim.lr"),
    ('{"optim.lr": {"low": 1}}', "a range needs 'low' and 'high'"),
    ('{"optim.lr": {"low": 2, "high": 1}}', "low=2 must be < high=1"),
    ('{"optim.lr": []}', "an empty list of choices"),
    ('[1]', "expected a non-empty JSON object"),
    ('{"a": ', "not JSON"),
])
def test_bad_spaces_name_the_key(text, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(")):
    parse_space(text)


def test_a_different_sweep_in_the_same_directory_is_refused(tmp_path):
  workdir = str(tmp_path / "s")
  os.makedirs(workdir)
  with open(os.path.join(workdir, "sweep.json"), "w") as f:
    json.dump({"space": {"optim.lr": [1.0]}}, f)
  with pytest.raises(ValueError, match="holds a different sweep"):
    sweep(smoke(), parse_space('{"optim.lr": [0.001]}'), workdir, sampler="grid")
