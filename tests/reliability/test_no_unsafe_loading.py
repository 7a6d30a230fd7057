"""No unsafe loading: nothing in the package can execute code from a file it reads.

Scans every module of seqrec_jax (its syntax tree, so comments and strings don't count)
for pickle-style deserialisers, eval/exec, and numpy loads with allow_pickle=True.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "seqrec_jax"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal", "jsonpickle"}
UNSAFE_CALLS = {"torch.load", "pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load",
                "pandas.read_pickle", "pd.read_pickle", "np.load", "numpy.load", "jnp.load",
                "eval", "exec"}


def _name(node) -> str:
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    return f"{_name(node.value)}.{node.attr}"
  return ""


def _findings(path: Path) -> list[str]:
  tree = ast.parse(path.read_text(), filename=str(path))
  out = []
  rel = str(path.relative_to(PACKAGE.parent))
  for node in ast.walk(tree):
    where = f"{rel}:{getattr(node, 'lineno', 0)}"
    if isinstance(node, ast.Import):
      out += [f"{where}: import {a.name}" for a in node.names
              if a.name.split(".")[0] in UNSAFE_MODULES]
    elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
      out.append(f"{where}: from {node.module} import ...")
    elif isinstance(node, ast.Call) and _name(node.func) in UNSAFE_CALLS:
      name = _name(node.func)
      if name.endswith(".load") and name.split(".")[0] in ("np", "numpy", "jnp"):
        # numpy's loader unpickles only with allow_pickle=True (its default is False)
        flag = [k for k in node.keywords if k.arg == "allow_pickle"]
        if not flag or (isinstance(flag[0].value, ast.Constant) and flag[0].value.value is False):
          continue
      elif name == "yaml.load":
        loader = [k for k in node.keywords if k.arg == "Loader"]
        if loader and _name(loader[0].value).endswith("SafeLoader"):
          continue
      out.append(f"{where}: {name}(...)")
  return out


def test_the_package_never_unpickles():
  files = sorted(PACKAGE.rglob("*.py"))
  assert len(files) > 20
  findings = [f for p in files for f in _findings(p)]
  assert not findings, "unsafe loading:\n" + "\n".join(findings)


def test_the_scan_would_catch_it(tmp_path):
  bad = tmp_path / "seqrec_jax" / "bad.py"
  bad.parent.mkdir()
  bad.write_text("import pickle\nimport numpy as np\nx = np.load('a.npz')\n"
                 "y = np.load('b.npz', allow_pickle=True)\nfrom dill import loads\n")
  global PACKAGE
  saved, PACKAGE = PACKAGE, bad.parent
  try:
    found = _findings(bad)
  finally:
    PACKAGE = saved
  assert len(found) == 3, found  # pickle, allow_pickle=True, dill (not the default np.load)
