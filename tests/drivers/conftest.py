"""Fixtures for the driver tests: a back door to the mount table that does not use the drivers."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_points() -> list[tuple[str, str, str, str]]:
    """(mount point, fs type, mount options, optional fields) straight from /proc/self/mountinfo."""
    result = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            result.append((_unescape(fields[4]), fields[sep + 1], fields[5], " ".join(fields[6:sep])))
    return result


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    real = os.path.realpath(path)
    return any(mp == real for mp, _, _, _ in mount_points())


def mounts_below(path: str | os.PathLike[str]) -> list[str]:
    real = os.path.realpath(path)
    found = {mp for mp, _, _, _ in mount_points() if mp == real or mp.startswith(real + "/")}
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def force_unmount_below(path: str | os.PathLike[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(3):  # stacked mounts need one umount each
        points = mounts_below(path)
        if not points:
            return
        for mp in points:
            libc.umount2(os.fsencode(mp), 2)  # MNT_DETACH


@pytest.fixture(autouse=True)
def _no_leftover_mounts(tmp_path: Path) -> Iterator[None]:
    """Every test leaves the mount table as it found it, even when it fails half-way."""
    yield
    force_unmount_below(tmp_path)
