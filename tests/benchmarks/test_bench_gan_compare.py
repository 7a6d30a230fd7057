"""benchmarks/gan_compare.py on the synthetic GAN smoke config."""

import pytest

from benchutil import results, run_script


@pytest.mark.slow
def test_gan_compare_smoke(tmp_path):
  run_script("gan_compare.py", "--datasets=synthetic", "--variant=smoke",
             "--config.train.num_epochs=1", "--synthetic.gan.epochs=1",
             f"--workdir={tmp_path / 'runs'}", f"--out={tmp_path}", "--tag=_t")
  data = results(tmp_path / "gan_compare_t.json")
  res = data["datasets"]["synthetic"]
  assert set(res["rows"]) == {"mle", "adversarial", "discriminator"}
  assert all(r["git"] and not r["reused"] for r in res["rows"].values())
  assert res["config"]["train"]["num_epochs"] == 1 and res["config"]["gan"]["epochs"] == 1
  assert data["per_dataset"] == {"synthetic": {"gan.epochs": 1}}
  assert (tmp_path / "gan_compare_t_synthetic.png").exists()
