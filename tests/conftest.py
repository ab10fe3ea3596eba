"""Fixtures shared by the API-level tests: a fresh store on each driver (vfs, overlay)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from containers_storage import Store, StoreOptions


def _overlay_usable() -> str:
    import os

    if os.geteuid() != 0:
        return "overlay needs root"
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return "kernel has no overlay file system"
    except OSError:
        return "cannot read /proc/filesystems"
    try:
        import containers_storage.drivers.overlay  # noqa: F401
    except ImportError as exc:
        return f"overlay driver not importable: {exc}"
    return ""


@pytest.fixture(params=["vfs", "overlay"])
def driver_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "overlay" and (reason := _overlay_usable()):
        pytest.skip(reason)
    return name


@pytest.fixture
def store(tmp_path: Path, driver_name: str) -> Iterator[Store]:
    s = Store.open(StoreOptions(graph_root=str(tmp_path / "root"), run_root=str(tmp_path / "run"),
                                driver_name=driver_name))
    try:
        yield s
    finally:
        try:
            s.shutdown(force=True)
        finally:
            s.free()
