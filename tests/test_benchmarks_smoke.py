"""The CLI benchmark still runs: ``benchmarks/cli_bench.py --quick`` on tiny stores.

Only a smoke check (exit status and the shape of the report); the numbers are
not judged here.  Skipped when the Go reference binary is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GO_BINARY = "/usr/bin/containers-storage"
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "cli_bench.py"

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(not os.access(GO_BINARY, os.X_OK), reason=f"{GO_BINARY} is not installed"),
]


def test_quick_benchmark_prints_a_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--runs", "1", "--sizes", "3,12", "--drivers", "vfs"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ours/ref" in out
    for case in ("version", "layers -j (12)", "images -j (12)", "create-layer (vfs)",
                 "API create+delete (vfs)"):
        assert case in out, out
    assert "\ntargets\n" in out
    assert "PASS" in out or "FAIL" in out
