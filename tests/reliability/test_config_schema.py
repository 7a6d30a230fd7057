"""Config validated before any data or compilation, from the one table of constraints
(seqrec_jax/config_schema.py): every field has a rule, every rule rejects a value
outside it by name, unknown keys get a suggestion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from configs import default
from seqrec_jax import config as config_lib
from seqrec_jax import config_schema
from seqrec_jax.train import engine
from seqrec_jax.train import mle  # noqa: F401  (registers the objective)

REPO = Path(__file__).resolve().parents[2]


def test_every_base_config_field_has_a_rule():
  assert config_schema.missing_rules() == []


def _outside(rule: config_schema.Rule, default):
  """Values just outside `rule` (and a wrong type), or [] for a rule that takes anything."""
  bad = []
  if isinstance(default, bool):
    return ["yes"]
  if isinstance(default, (int, float)):
    bad.append("1")  # wrong type
    step = 1 if isinstance(default, int) else 1e-6
    if rule.lo is not None:
      bad.append(type(default)(rule.lo) if rule.open_lo else type(default)(rule.lo - step))
    if rule.hi is not None:
      bad.append(type(default)(rule.hi) if rule.open_hi else type(default)(rule.hi + step))
    if isinstance(default, float):
      bad.append(float("nan"))
  elif isinstance(default, str):
    bad.append(3)
    if rule.choices is not None:
      bad.append("no-such-choice")
    elif rule.nonempty:
      bad.append("")
  elif isinstance(default, tuple):
    if rule.nonempty:  # () is a valid value of some tuples (eval.popularity_buckets: off)
      bad.append(())
    if rule.each is not None:
      bad.append((0,) if rule.each.lo == 1 and -1 not in rule.each.also else (-7,))
  return bad


CASES = []
for key, default_value in config_schema.leaves(config_lib.base_config()).items():
  for value in _outside(config_schema.RULES.get(key, config_schema.ANY), default_value):
    CASES.append((key, value))


def _set(cfg, key, value):
  *path, last = key.split(".")
  node = cfg
  for p in path:
    node = node[p]
  with node.ignore_type():
    node[last] = value


def test_every_rule_rejects_a_value_outside_it_by_name():
  assert len(CASES) > 250
  for key, value in CASES:
    cfg = default.get_config("smoke")
    _set(cfg, key, value)
    with pytest.raises(ValueError, match=f"config.{key}"):
      config_schema.check(cfg)


ISSUE_VALUES = [("model.mlp_dim", 0), ("train.checkpoint_every_epochs", 0),
                ("loss.vocab_chunk", -1), ("seed", -1), ("optim.lr", -1e-3),
                ("optim.clip_norm", -1.0), ("model.dropout", 1.0), ("model.emb_dropout", -0.1),
                ("optim.b2", 1.5), ("optim.warmup_steps", -5), ("train.patience", -1),
                ("loss.num_negatives", 0), ("eval.ks", (1, -5, 10)), ("train.max_to_keep", 0)]


@pytest.mark.parametrize("key,value", ISSUE_VALUES)
def test_issue_values_fail_before_any_data_or_compilation(tmp_path, key, value):
  cfg = default.get_config("smoke")
  _set(cfg, key, value)
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=f"^config.{key}="):
    engine.run(cfg, str(workdir), "mle")
  assert not workdir.exists()  # nothing was started


def test_unknown_key_and_section_named_with_a_suggestion():
  cfg = default.get_config("smoke")
  cfg.unlock()
  cfg.model.num_block = 3
  with pytest.raises(ValueError, match=r"unknown config key config.model.num_block; did you "
                     r"mean config.model.num_blocks\?"):
    config_schema.check(cfg)
  cfg = default.get_config("smoke")
  cfg.unlock()
  cfg.foo = ml_collections.ConfigDict({"bar": 1})
  with pytest.raises(ValueError, match="unknown config section config.foo"):
    config_schema.check(cfg)


def test_choice_errors_suggest_the_close_name():
  cfg = default.get_config("smoke")
  cfg.model.name = "sasrek"
  with pytest.raises(ValueError, match="did you mean 'sasrec'"):
    config_schema.check(cfg)


@pytest.mark.reliability
@pytest.mark.parametrize("flag,expect", [
    ("--config.foo.bar=1", "unknown config section config.foo"),
    ("--config.model.num_block=3", "did you mean config.model.num_blocks?"),
    ("--config.optim.lr=-1", "config.optim.lr=-1.0: must be > 0"),
])
def test_cli_bad_config_is_one_line(tmp_path, flag, expect):
  env = {k: v for k, v in os.environ.items() if k not in ("SEQREC_TRACEBACK", "XLA_FLAGS")}
  out = subprocess.run([sys.executable, "-m", "seqrec_jax.train",
                        "--config=configs/default.py:smoke", f"--workdir={tmp_path / 'w'}", flag],
                       cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert out.returncode == 2, out.stderr[-2000:]
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert expect in lines[0] and lines[0].startswith("error: "), lines
  assert len(lines) <= 2 and "Traceback" not in out.stderr, lines
  assert not (tmp_path / "w").exists()
