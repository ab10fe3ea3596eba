"""containers-storage: layers, images and containers shared with podman and the Go library."""

from __future__ import annotations

__version__ = "0.1.0"
