"""Driver registry: names map to ``module:Class`` strings, imported on demand.

Nothing registers itself on import, so asking for the list of drivers costs
no imports, and a broken optional driver cannot break the others.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from ..errors import DriverError

if TYPE_CHECKING:
    from .base import Driver

KNOWN_DRIVERS: dict[str, str] = {
    "overlay": "containers_storage.drivers.overlay:OverlayDriver",
    "vfs": "containers_storage.drivers.vfs:VfsDriver",
}

ALIASES = {"overlay2": "overlay"}

# Upstream's default priority when nothing is configured (vfs only if listed).
DEFAULT_PRIORITY = ["overlay", "aufs", "btrfs", "zfs", "vfs"]


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def driver_class(name: str) -> type[Driver]:
    """Import and return the class of driver *name*."""
    target = KNOWN_DRIVERS.get(canonical_name(name))
    if target is None:
        raise DriverError(sentinel=f"failed to GetDriver graph {name}: driver not supported")
    module_name, _, attr = target.partition(":")
    cls: type[Driver] = getattr(importlib.import_module(module_name), attr)
    return cls


def prior_drivers(graphroot: str) -> list[str]:
    """Registered drivers whose home already exists under *graphroot*."""
    return [name for name in KNOWN_DRIVERS if os.path.isdir(os.path.join(graphroot, name))]
