"""docs/config_reference.md is generated from base_config() and kept up to date."""

from pathlib import Path

from seqrec_jax import config_doc
from seqrec_jax.config import base_config

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "config_reference.md"
REGENERATE = f"cd {ROOT} && {config_doc.COMMAND} --out=docs/config_reference.md"


def test_committed_reference_is_up_to_date():
  text = config_doc.render_config_reference()
  assert REFERENCE.exists(), f"{REFERENCE} is missing; generate it with: {REGENERATE}"
  committed = REFERENCE.read_text(encoding="utf-8")
  assert committed == text, (
      f"{REFERENCE.relative_to(ROOT)} is out of date with seqrec_jax/config.py "
      f"(or the model registry); regenerate it with: {REGENERATE}")


def test_every_base_config_key_is_documented_once():
  text = config_doc.render_config_reference()
  keys = config_doc.config_keys(base_config())
  assert len(keys) > 50
  rows = [line for line in text.splitlines() if line.startswith("| `")]
  documented = [row.split("`")[1] for row in rows]
  assert sorted(documented) == sorted(keys)
  for key in keys:
    assert f"| `{key}` |" in text, key


def test_descriptions_defaults_and_allowed_values():
  text = config_doc.render_config_reference()
  row = lambda key: next(l for l in text.splitlines() if l.startswith(f"| `{key}` |"))
  assert "## data" in text and "## gan" in text and "## top level" in text
  # the trailing comment, the default, the type, and the validator's allowed values
  assert row("data.on_error") == (
      '| `data.on_error` | `"raise"` | str | raise \\| skip (malformed rows counted in the '
      'report). Allowed: `"raise"`, `"skip"`. |')
  # comment lines above the assignment (a tuple default in Python syntax)
  assert "long histories are trained in full" in row("task.windows")
  assert '`("data", "model")` | tuple[str, ...]' in row("mesh.axes")
  assert "Allowed:" in row("gan.estimator")  # choices of another section's mapping
  assert "Allowed:" in row("model.name") and '`"sasrec"`' in row("model.name")


def test_choices_fallbacks(monkeypatch):
  from seqrec_jax import config as config_lib
  # no choices() function and the mapping renamed: the module's *CHOICES* mappings
  monkeypatch.delattr(config_lib, "choices", raising=False)
  monkeypatch.setattr(config_lib, "_RENAMED_CHOICES", {"train.input": ("grain", "device")},
                      raising=False)
  assert config_doc.allowed_values()["train.input"] == ("grain", "device")
  # a choices() that fails falls back too; one that works wins
  monkeypatch.setattr(config_lib, "choices", lambda: 1 / 0, raising=False)
  assert config_doc.allowed_values()["train.input"] == ("grain", "device")
  monkeypatch.setattr(config_lib, "choices", lambda: {"train.input": ("x",)}, raising=False)
  assert config_doc.allowed_values()["train.input"] == ("x",)
  monkeypatch.delattr(config_lib, "choices")
  for name in [n for n, v in vars(config_lib).items() if "CHOICES" in n and isinstance(v, dict)]:
    monkeypatch.delattr(config_lib, name)
  assert config_doc.allowed_values() == {}
  assert "| `train.input` |" in config_doc.render_config_reference()


def test_check_flag(tmp_path, capsys):
  out = tmp_path / "ref.md"
  assert config_doc.main([f"--out={out}", "--check"]) == 1
  assert "config_doc" in capsys.readouterr().err
  assert config_doc.main([f"--out={out}"]) == 0
  assert config_doc.main([f"--out={out}", "--check"]) == 0
