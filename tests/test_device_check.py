"""benchmarks/device_check.sh at CPU sizes: the one command that measures an accelerator prints its whole table."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_device_check_runs_at_cpu_sizes_and_prints_every_row():
    fast_compile = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"  # same programs
    env = {**os.environ, "DEVICE_CHECK_PYTHON": sys.executable, "DEVICE_CHECK_BUDGET_S": "600",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {fast_compile}".strip()}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--tiny"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| measure | batch | method | precision | rate |")
    rows = [line.split("|")[1:-1] for line in table[2:]]
    measures = [(r[0].strip(), r[3].strip()) for r in rows]
    assert measures[:6] == [("heatmaps", p) for p in ("fp32", "tf32", "bf16")] + [
        ("gradient", p) for p in ("fp32", "tf32", "bf16")]
    assert [m for m, _ in measures[6:]] == ["input pipeline", "lrpjax explain (JPEGs → h5)", "training step",
                                            "masking stage"]
    assert all(float(r[4]) > 0 for r in rows) and "skipped" not in done.stdout
    assert float(rows[0][6]) == 0 and 0.9 < float(rows[2][7]) < 1  # fp32 against itself; bf16 close, not equal
    assert "% of bare" in rows[7][2]
