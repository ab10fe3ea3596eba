"""Progress of long commands: shown on a terminal's stderr, never anywhere else."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from containers_storage.cli.progress import Progress, ProgressReader, human_bytes


def _tar(path: Path, files: int = 50, size: int = 200_000) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"f{i:03d}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes([i % 251]) * size))


def _on_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run our CLI with stderr on a pseudo-terminal; returns (rc, stdout, what the terminal got)."""
    controller, terminal = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "containers_storage", *argv], stdout=subprocess.PIPE,
                              stderr=terminal, stdin=subprocess.DEVNULL, check=False)
        os.close(terminal)
        terminal = -1
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO once the terminal side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    return proc.returncode, proc.stdout.decode(), seen.decode()


def test_import_and_check_show_progress_on_a_terminal_and_erase_it(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    _tar(layer)
    store = ["-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"), "-s", "vfs"]
    rc, out, terminal = _on_terminal([*store, "import-layer", "-f", str(layer)])
    assert rc == 0 and len(out.strip()) == 64
    assert "importing layer: " in terminal and "(100%)" in terminal
    assert terminal.endswith("\r\x1b[K")  # the line is erased at the end
    rc, out, terminal = _on_terminal([*store, "check"])
    assert (rc, out) == (0, "")
    assert "checking layers: 1 of 1" in terminal and terminal.endswith("\r\x1b[K")


def test_nothing_is_shown_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    _tar(layer, files=3)
    store = ["-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"), "-s", "vfs"]
    proc = subprocess.run([sys.executable, "-m", "containers_storage", *store, "import-layer", "-f", str(layer)],
                          capture_output=True, check=True)
    assert proc.stderr == b""
    proc = subprocess.run([sys.executable, "-m", "containers_storage", *store, "check"],
                          capture_output=True, check=True)
    assert proc.stderr == b""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_reader_counts_reads_and_rewinds() -> None:
    screen = _Terminal()
    progress = Progress(screen, "reading")
    reader = ProgressReader(io.BytesIO(b"x" * 3000), progress)  # not a file: no total known
    assert reader.read(1000) == b"x" * 1000
    assert screen.getvalue().endswith("reading: 1000 B read")
    assert reader.seek(0) == 0
    progress.done()
    assert screen.getvalue().endswith("\r\x1b[K")
    progress.show("after done")  # done() also turns it off
    assert "after done" not in screen.getvalue()


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 << 20, 3 << 30, 5000 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "5.0 MiB", "3.0 GiB", "5000.0 GiB"]
