"""The check benchmark still runs: ``benchmarks/check_bench.py --quick`` on tiny inputs.

Only a smoke check (exit status and the shape of the report); the numbers are
not judged here.  Skipped without root (the benchmark mounts a tmpfs and the
overlay driver needs root) or without GNU tar and zstd (the inputs of
``layer_bench.py``).  No Go binary is needed: Go 1.43 has no ``check``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "check_bench.py"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs mount, overlay driver)"),
    pytest.mark.skipif(any(shutil.which(tool) is None for tool in ("tar", "gzip", "zstd")),
                       reason="needs GNU tar, gzip and zstd (layer_bench.py makes the inputs with them)"),
]


def test_quick_check_benchmark_prints_a_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--runs", "1", "--workdir", str(tmp_path / "inputs")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for col in ("check ms", "check -q ms", "full/quick", "version ms", "check RSS", "check -q RSS"):
        assert col in out, out
    for case in ("rootfs", "small-200"):
        assert f"\n{case} " in out, out
    assert "\ntargets\n" in out, out
    assert "check -q on rootfs >= 5x faster than check" in out, out
    assert "  PASS  " in out or "  FAIL  " in out, out
    assert "no Go column" in out, out
