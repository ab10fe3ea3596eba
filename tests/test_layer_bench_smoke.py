"""The layer benchmark still runs: ``benchmarks/layer_bench.py --quick`` on tiny inputs.

Only a smoke check (exit status and the shape of the report); the numbers are
not judged here.  Skipped without the Go reference binary, or without root (the
benchmark mounts a tmpfs and the overlay driver needs root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GO_BINARY = "/usr/bin/containers-storage"
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "layer_bench.py"

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(not os.access(GO_BINARY, os.X_OK), reason=f"{GO_BINARY} is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs mount, overlay driver)"),
    pytest.mark.skipif(shutil.which("tar") is None or shutil.which("zstd") is None,
                       reason="needs GNU tar and zstd"),
]


def test_quick_layer_benchmark_prints_a_table(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--runs", "1", "--workdir", str(tmp_path / "inputs"),
         "--tmpfs-size", "512m"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for col in ("ours/Go", "ours/tar", "our peak RSS"):
        assert col in out, out
    for case in ("rootfs (tar)", "rootfs (gzip)", "rootfs (zstd)", "small files", "16 MiB in 4 files",
                 "diff -u rootfs"):
        assert case in out, out
    assert "output == input" in out, out
    assert "\ntargets\n" in out
    assert "PASS" in out or "FAIL" in out
