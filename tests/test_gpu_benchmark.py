"""benchmarks/gpu.py on the CPU at tiny sizes (it has not met a GPU here; docs/scale.md): every part of the table
runs — raw steps in each precision and memory format, lossland jobs in trainer.precision 32-true and bf16-mixed,
the vmapped grid against sequential jobs — and it prints the rows step_times.yaml takes."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_gpu_benchmark_runs_on_the_cpu_at_tiny_sizes():
    res = subprocess.run([sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--tiny", "--no-compile"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    for row in ("raw step, fp32", "raw step, bf16 channels-last", "lossland job, trainer.precision=32-true",
                "lossland job, trainer.precision=bf16-mixed", "grid of 2", "full CE grid"):
        assert row in out, row
    assert "failed" not in out, out
    rows = [json.loads(line.strip()[2:]) for line in out.splitlines() if line.strip().startswith("- {")]
    assert all(r["model"] == "convnet_si" and r["device"] == "cpu" and r["ms"] > 0 for r in rows)


def test_gpu_benchmark_says_when_there_is_no_gpu():
    import torch

    if torch.cuda.is_available():
        return
    res = subprocess.run([sys.executable, "benchmarks/gpu.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "no CUDA device here" in res.stderr
