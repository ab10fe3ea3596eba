"""Fixtures for the interoperability suite: one store shared with the Go binary.

Every test here runs the Go reference CLI (``/usr/bin/containers-storage``,
called by absolute path because our own console script has the same name)
and our implementation on the same graph root and run root, and checks that
they agree.  The whole directory is skipped when the Go binary is absent.

Fixtures:

* ``driver`` -- ``"vfs"`` or ``"overlay"`` (overlay skipped with a reason when
  our overlay driver cannot be imported or cannot create/mount a layer here).
* ``roots`` -- a fresh ``(graph_root, run_root)`` pair under ``tmp_path``.
* ``go`` -- runs the Go CLI with ``--graph/--run/-s`` on that store;
  ``go(...)`` returns a :class:`Result`, ``go.json(...)`` parses ``-j`` output.
* ``store`` -- our :class:`Store` opened on the same roots.
* ``our_cli`` -- our CLI (``python -m containers_storage``) on the same
  store; skips the test when the CLI does not work yet.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import CLI, GO_AVAILABLE, GO_BINARY, GO_MISSING, OUR_CLI, our_cli_problem

DRIVERS = ("vfs", "overlay")
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``compat``; skip them all without the Go binary."""
    for item in items:
        if _HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.compat)
        if not GO_AVAILABLE:
            item.add_marker(pytest.mark.skip(reason=GO_MISSING))


# ---------------------------------------------------------------------------
# Drivers


_overlay_verdict: list[str | None] = []


def overlay_problem(probe_root: str) -> str | None:
    """Cached :func:`_probe_overlay` (the probe runs once per session)."""
    if not _overlay_verdict:
        _overlay_verdict.append(_probe_overlay(probe_root))
    return _overlay_verdict[0]


def _probe_overlay(probe_root: str) -> str | None:
    """Why our overlay driver is not usable here, or None.

    Usable means: importable, and a store can create, mount and unmount an
    empty layer.  Go's overlay driver must work here too.
    """
    try:
        from containers_storage.drivers import driver_class

        driver_class("overlay")
    except Exception as exc:
        return f"our overlay driver is not importable yet: {type(exc).__name__}: {exc}"
    graph, run = os.path.join(probe_root, "g"), os.path.join(probe_root, "r")
    go = CLI([GO_BINARY], graph + "-go", run + "-go", "overlay")
    try:
        layer = go("create-layer", check=False)
        if layer.rc != 0:
            return f"the Go overlay driver does not work here: {layer.stderr.strip()}"
        layer_id = layer.stdout.split()[0]
        mounted = go("mount", layer_id, check=False)
        go("unmount", layer_id, check=False)
        go("shutdown", check=False)
        if mounted.rc != 0:
            return f"the Go overlay driver cannot mount here: {mounted.stderr.strip()}"
    finally:
        _unmount_under(probe_root)
    store = None
    try:
        from containers_storage import Store, StoreOptions

        store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name="overlay"))
        ours = store.create_layer()
        path = store.mount(ours.id)
        if not os.path.isdir(path):
            return f"our overlay driver returned a mount path that is not a directory: {path}"
        store.unmount(ours.id)
        store.delete_layer(ours.id)
        store.shutdown(force=True)
    except Exception as exc:
        return f"our overlay driver is not usable yet: {type(exc).__name__}: {exc}"
    finally:
        if store is not None:
            store.free()
        _unmount_under(probe_root)
    return None


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    name: str = request.param
    if not GO_AVAILABLE:
        pytest.skip(GO_MISSING)
    if name == "overlay":
        if os.geteuid() != 0:
            pytest.skip("overlay compat tests need root (kernel overlay mounts)")
        problem = overlay_problem(str(tmp_path_factory.mktemp("overlay-probe")))
        if problem:
            pytest.skip(problem)
    return name


# ---------------------------------------------------------------------------
# Mount hygiene: both overlay drivers leave a bind mount of G/overlay behind


def _mounts_under(root: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root.rstrip("/") + "/"):
                found.append(point)
    return found


def _unmount_under(root: str) -> None:
    for point in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# ---------------------------------------------------------------------------
# The shared store


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[tuple[str, str]]:
    graph, run = tmp_path / "graph", tmp_path / "run"
    yield str(graph), str(run)
    _unmount_under(str(tmp_path))


@pytest.fixture
def go(roots: tuple[str, str], driver: str) -> Iterator[CLI]:
    """The Go reference CLI on the shared store."""
    if not GO_AVAILABLE:
        pytest.skip(GO_MISSING)
    cli = CLI([GO_BINARY], roots[0], roots[1], driver)
    yield cli
    # Releases the overlay home bind mount; fails harmlessly while layers are mounted.
    cli("shutdown", check=False)


@pytest.fixture
def store(roots: tuple[str, str], driver: str) -> Iterator[Any]:
    """Our Store opened on the shared store."""
    from containers_storage import Store, StoreOptions

    opened = Store.open(StoreOptions(graph_root=roots[0], run_root=roots[1], driver_name=driver))
    yield opened
    try:
        opened.shutdown(force=True)
    except Exception:
        pass  # a test may have corrupted the store on purpose
    finally:
        opened.free()


@pytest.fixture
def our_cli(roots: tuple[str, str], driver: str) -> CLI:
    """Our CLI on the shared store; skips the test until ``python -m containers_storage`` works."""
    problem = our_cli_problem()
    if problem:
        pytest.skip(problem)
    return CLI(OUR_CLI, roots[0], roots[1], driver)
