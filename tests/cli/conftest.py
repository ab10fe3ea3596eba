"""In-process CLI fixtures: ``main(argv)`` on a fresh vfs store under ``tmp_path``."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from containers_storage.cli.main import main


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


Run = Callable[..., Result]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[str, str]:
    return str(tmp_path / "g"), str(tmp_path / "r")


@pytest.fixture
def run_raw(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run_raw(*argv, stdin=b"")``: main() with exactly these arguments."""

    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        rc = main(list(argv))
        captured = capsys.readouterr()
        return Result(rc, captured.out, captured.err)

    return run


@pytest.fixture
def cli(run_raw: Run, roots: tuple[str, str]) -> Run:
    """``cli(*argv)``: main() with ``--graph G --run R -s vfs`` prepended."""
    graph, run_root = roots

    def run(*argv: str, stdin: bytes = b"") -> Result:
        return run_raw("--graph", graph, "--run", run_root, "-s", "vfs", *argv, stdin=stdin)

    return run
