"""Command-line config flags shared by the entry points and the benchmark scripts:
`--config=path[:variant]` with `--config.a.b=v` overrides, or overrides alone against
`base_config()`; an unknown key stops with one line naming it and the closest key."""

from __future__ import annotations

import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from seqrec_jax import config as config_lib
from seqrec_jax import config_schema


def define_config(default: str | None, help_string: str = "") -> flags.FlagHolder:
  """`--config=path[:variant]` and `--config.a.b=v`, as `python -m seqrec_jax.train`
  (scripts run through `cli.run`, which reports an unknown key in one line)."""
  try:  # without --config on the command line the default is loaded (and overridden) here
    return config_flags.DEFINE_config_file(
        "config", default, help_string or "Config file (configs/*.py[:variant]); override any "
        "field with --config.a.b=v.", lock_config=True)
  except (KeyError, AttributeError) as e:  # what ml_collections raises for an unknown key
    _unknown_override("config", e)


def define_overrides(name: str = "config", help_string: str = "") -> flags.FlagHolder:
  """`--<name>.a.b=v` overrides alone, parsed by ml_collections against `base_config()`.

  ml_collections looks the keys up as the flag is defined (the config is inline), so an
  unknown key stops the script here, with the one line `cli.run` prints for --config."""
  try:
    return config_flags.DEFINE_config_dict(
        name, config_lib.base_config(), help_string or f"--{name}.a.b=v overrides any config "
        "field of every preset the script builds (`--{name}=...` itself is not accepted).",
        lock_config=True)
  except (KeyError, AttributeError) as e:  # what ml_collections raises for an unknown key
    _unknown_override(name, e)


def _unknown_override(name: str, error: Exception) -> None:
  known = config_schema.leaves(config_lib.base_config())
  sections = {k.rsplit(".", 1)[0] for k in known if "." in k}
  given = [a[len(name) + 3:].split("=", 1)[0] for a in sys.argv[1:]
           if a.startswith(f"--{name}.")]
  bad = [k for k in given if k not in known and k not in sections
         and not k.startswith("data.synthetic.")]
  if not bad or os.environ.get("SEQREC_TRACEBACK"):
    raise error
  where = "" if name == "config" else f"--{name}.{bad[0]}: "
  print(f"error: {where}{config_schema.unknown_key_message(bad[0])}", file=sys.stderr)
  sys.exit(2)


def overrides(holder: flags.FlagHolder) -> dict:
  """The parsed `--<name>.a.b=v` values of a config flag: {"a.b": value}, in order."""
  return dict(config_flags.get_override_values(flags.FLAGS[holder.name]))


def with_overrides(cfg: ml_collections.ConfigDict, flat: dict) -> ml_collections.ConfigDict:
  """A copy of `cfg` with the flat overrides applied (unknown keys raise, by name)."""
  out = ml_collections.ConfigDict(cfg.to_dict())
  out.update_from_flattened_dict(flat)
  return out


def config_from_flags(holder: flags.FlagHolder, defaults: dict | None = None
                      ) -> ml_collections.ConfigDict:
  """The parsed `--config` (a copy), `defaults` ({"a.b": v}) filling the keys that no
  `--config.a.b` sets: the file's value < the script's default < the command line."""
  given = overrides(holder)
  return with_overrides(holder.value, {k: v for k, v in (defaults or {}).items()
                                       if k not in given})


def config_name(holder: flags.FlagHolder) -> str:
  """What `--config` named (path[:variant])."""
  return config_flags.get_config_filename(flags.FLAGS[holder.name])
