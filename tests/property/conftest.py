"""Fixtures for the property tests: a fresh store per hypothesis example, on vfs and overlay."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from tests.conftest import opened_store

from containers_storage import Store

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
        try:
            with opened_store(base, driver_name) as s:
                yield s
        finally:
            shutil.rmtree(base, ignore_errors=True)

    return make
