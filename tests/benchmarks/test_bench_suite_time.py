"""benchmarks/suite_time.py: a pytest tier's wall time and counts, from a real pytest run."""

from benchutil import results, run_script


def test_suite_time_records_counts_and_a_failing_tier(tmp_path):
  run_script("suite_time.py", "--args=tests/test_bench_stats.py -k per_user_metrics",
             f"--out={tmp_path}", "--tag=t")
  data = results(tmp_path / "suite_time_t.json")
  assert data["returncode"] == 0 and data["counts"]["passed"] == 1
  assert data["counts"]["deselected"] >= 1 and data["wall_seconds"] >= data["pytest_seconds"] > 0
  assert data["matmul_gflops_before"] > 1  # the machine-speed probe ran
  # a tier that fails is recorded as failed (and the script exits with pytest's status)
  out = run_script("suite_time.py", "--args=tests/test_bench_stats.py -k no_such_test_xyz",
                   f"--out={tmp_path}", "--tag=f", ok=False)
  assert out.returncode != 0 and results(tmp_path / "suite_time_f.json")["returncode"] != 0
