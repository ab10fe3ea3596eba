"""Fixtures for the property tests: a fresh store per hypothesis example, on vfs and overlay."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from containers_storage import Store, StoreOptions

StoreFactory = Callable[[], AbstractContextManager[Store]]


@pytest.fixture
def fresh_store(tmp_path: Path, driver_name: str) -> StoreFactory:
    """A factory of stores, each in its own directory and removed afterwards.

    Hypothesis runs many examples per test function; a function-scoped ``store``
    would be shared between them, so every example opens its own.
    """
    counter = itertools.count()

    @contextmanager
    def make() -> Iterator[Store]:
        base = tmp_path / f"store{next(counter)}"
        s = Store.open(StoreOptions(graph_root=str(base / "root"), run_root=str(base / "run"),
                                    driver_name=driver_name))
        try:
            yield s
        finally:
            try:
                s.shutdown(force=True)
            finally:
                s.free()
                shutil.rmtree(base, ignore_errors=True)

    return make
