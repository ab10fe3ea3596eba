"""containers-storage: layers, images and containers shared with podman and the Go library.

The public names are loaded on first use so that importing the package (as the
CLI does at start-up) costs almost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Container",
    "ContainerOptions",
    "IDMap",
    "IDMappingOptions",
    "Image",
    "ImageOptions",
    "Layer",
    "LayerOptions",
    "Store",
    "StoreOptions",
    "errors",
    "open_store",
]

_LAZY = {
    "Store": "store", "open_store": "store", "StoreOptions": "options",
    "Layer": "records", "Image": "records", "Container": "records", "IDMap": "records",
    "LayerOptions": "creation", "ImageOptions": "creation", "ContainerOptions": "creation",
    "IDMappingOptions": "creation",
}

if TYPE_CHECKING:
    from . import errors
    from .creation import ContainerOptions, IDMappingOptions, ImageOptions, LayerOptions
    from .options import StoreOptions
    from .records import Container, IDMap, Image, Layer
    from .store import Store, open_store


def __getattr__(name: str) -> Any:
    import importlib

    if name == "errors":
        return importlib.import_module(".errors", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
