"""Fixtures shared by the API-level tests: a fresh store on each driver (vfs, overlay)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def opened_store(base: Path, driver_name: str) -> Iterator[Store]:
    """A store under *base* (``root``, ``run``), shut down (forced) and forgotten afterwards."""
    s = Store.open(StoreOptions(graph_root=str(base / "root"), run_root=str(base / "run"),
                                driver_name=driver_name))
    try:
        yield s
    finally:
        try:
            s.shutdown(force=True)
        finally:
            s.free()


@pytest.fixture
def store(tmp_path: Path, driver_name: str) -> Iterator[Store]:
    with opened_store(tmp_path, driver_name) as s:
        yield s
