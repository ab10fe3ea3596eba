"""Machinery shared by the layer, image and container stores.

A record store is one or more JSON array files guarded by one lock file.  It
keeps the records in memory, reloads them whenever the last-writer token in
the lock file (or, for layers, a file's mtime) says another process wrote, and
saves through the atomic-write helper after recording a new writer token.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from . import atomicio
from .errors import DuplicateName, InvalidBigDataName, StoreIsReadOnly, goquote
from .lockfile import LockFile, get_lockfile
from .records import Container, Image, Layer, decode_records, encode_records

R = TypeVar("R", Layer, Image, Container)

_PLAIN_KEY_CHARS = ".0123456789abcdefghijklmnopqrstuvwxyz"

# Record flag naming big-data items whose new content is written but not yet in place.
PENDING_BIG_DATA = "pending-big-data"


def bigdata_file_name(key: str) -> str:
    """File name of a big-data item: the key itself if plain, else ``=`` + base64."""
    if not key:
        raise InvalidBigDataName(f"can't set empty name for big data item {goquote(key)}")
    if not key.strip(_PLAIN_KEY_CHARS):  # only these characters (a regex's $ would allow a final \n)
        return key
    import base64  # rare: only keys with characters outside [.0-9a-z]

    return "=" + base64.b64encode(key.encode("utf-8", "surrogateescape")).decode("ascii")


def generate_id(taken: Callable[[str], bool]) -> str:
    """A random 64-hex ID whose first 12 characters are not all digits, not in use."""
    while True:
        candidate = os.urandom(32).hex()
        if candidate[:12].isdigit() or taken(candidate):
            continue
        return candidate


def dedup(names: list[str] | tuple[str, ...]) -> list[str]:
    """Remove repeated names keeping the first occurrence."""
    seen: set[str] = set()
    out = []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


class RecordFile:
    """One JSON file of a record store and the location tag of its records."""

    def __init__(self, path: str, location: str, *, durable: bool = True) -> None:
        self.path = path
        self.location = location
        self.durable = durable
        self.mtime_ns: int | None = None

    def stat_mtime(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None


class RecordStore(Generic[R]):
    """Records of one kind, their name/ID indexes and the lock that guards them."""

    record_type: type[R]
    kind: str = "record"
    # Layers also reload on mtime change (upstream detects hand edits that way).
    check_mtimes = False

    def __init__(self, directory: str, lock_path: str, files: list[RecordFile], *,
                 read_only: bool = False, durable: bool = True) -> None:
        self.dir = directory
        self.read_only = read_only
        self.durable = durable
        self.files = files
        if not read_only:
            atomicio.ensure_dir(directory)
        self.lock: LockFile = get_lockfile(lock_path, read_only=read_only)
        self.records: list[R] = []
        self.by_id: dict[str, R] = {}
        self._by_name: dict[str, R] = {}
        self._stale_indexes = False
        self._loaded = False

    # ---------------------------------------------------------------- locking

    @contextmanager
    def reading(self) -> Iterator[None]:
        # A reader that finds something a crash left half-done (see needs_fixup)
        # upgrades to the write lock once to finish it, as upstream does for
        # incomplete layers; read-only stores leave it alone.
        for _ in range(3):
            self.lock.acquire_read()
            try:
                self._reload_if_changed()
            except BaseException:
                self.lock.release_read()
                raise
            if self.read_only or self.lock.locked_for_writing or not self.needs_fixup():
                break
            self.lock.release_read()
            with self.writing():
                pass
        try:
            yield
        finally:
            self.lock.release_read()

    @contextmanager
    def writing(self) -> Iterator[None]:
        if self.read_only:
            raise StoreIsReadOnly(f"not allowed to modify {self.kind}s at {goquote(self.dir)}")
        self.lock.acquire_write()
        try:
            self._reload_if_changed()
            if self.needs_fixup():
                self.fixup()
                self.save()
            yield
        finally:
            self.lock.release_write()

    def needs_fixup(self) -> bool:
        """Whether a crash left work half-done that the next writer must finish or undo."""
        return any(PENDING_BIG_DATA in record.flags for record in self.records)

    def fixup(self) -> None:
        """Finish what a crash interrupted (write lock held; the caller saves)."""
        for record in self.records:
            if PENDING_BIG_DATA in record.flags:
                self.commit_pending_bigdata(record)

    def _reload_if_changed(self) -> None:
        modified = self.lock.modified()
        if not modified and self.check_mtimes and self._loaded:
            modified = any(f.stat_mtime() != f.mtime_ns for f in self.files)
        if modified or not self._loaded:
            self.load()

    # -------------------------------------------------------------- load/save

    def load(self) -> None:
        records: list[R] = []
        by_id: dict[str, R] = {}
        for record_file in self.files:
            record_file.mtime_ns = record_file.stat_mtime()
            data = atomicio.read_file(record_file.path)
            for record in decode_records(data, record_file.path, self.record_type):
                self._on_load_record(record, record_file.location)
                if record.id in by_id:
                    continue  # first file wins, as upstream's load order does
                records.append(record)
                by_id[record.id] = record
        self.records = records
        self.by_id = by_id
        self._rebuild_indexes()
        self._loaded = True
        self._after_load()

    def _on_load_record(self, record: R, location: str) -> None:
        """Hook: set runtime-only state of a record read from the *location* file."""

    def _after_load(self) -> None:
        """Hook: fix-ups that may need saving (duplicate names, half-done work)."""
        changed = self._dedup_names_on_load()
        if self.lock.locked_for_writing and (changed or self.needs_fixup()):
            self.fixup()
            self.save()

    def _dedup_names_on_load(self) -> bool:
        """Drop a name from an earlier record when a later one also has it."""
        names = [name for record in self.records for name in record.names]
        if len(set(names)) == len(names):
            return False  # the usual case, found without a dict update per name
        owner: dict[str, R] = {}
        changed = False
        for record in self.records:
            for name in record.names:
                previous = owner.get(name)
                if previous is not None and previous is not record:
                    previous.names = [n for n in previous.names if n != name]
                    changed = True
                owner[name] = record
        if changed:
            self._rebuild_indexes()
        return changed

    def _rebuild_indexes(self) -> None:
        """Mark the derived indexes stale; they are rebuilt on first use.

        A listing never looks anything up, so it never pays for them.
        """
        self._stale_indexes = True

    def _ensure_indexes(self) -> None:
        if self._stale_indexes:
            self._stale_indexes = False
            self._build_indexes()

    def _build_indexes(self) -> None:
        self._by_name = {name: r for r in self.records for name in r.names}

    @property
    def by_name(self) -> dict[str, R]:
        self._ensure_indexes()
        return self._by_name

    def location_of(self, record: R) -> str:
        return self.files[0].location

    def save(self, locations: set[str] | None = None) -> None:
        """Write the files whose location changed (all when *locations* is None)."""
        assert self.lock.locked_for_writing, f"{self.kind} store saved without its write lock"
        self.lock.record_write()
        for record_file in self.files:
            if locations is not None and record_file.location not in locations:
                continue
            chosen = [r for r in self.records if self.location_of(r) == record_file.location]
            if not chosen and record_file.location != self.files[0].location and \
                    not os.path.exists(record_file.path):
                continue  # don't litter older stores with empty secondary files
            atomicio.write_file(record_file.path, encode_records(chosen),
                                durable=self.durable and record_file.durable)
            record_file.mtime_ns = record_file.stat_mtime()

    # ---------------------------------------------------------------- lookups

    def get(self, ref: str) -> R | None:
        """Exact ID, then name, then unique ID prefix (ambiguous prefix: not found)."""
        record = self.by_id.get(ref)
        if record is not None:
            return record
        record = self.by_name.get(ref)
        if record is not None:
            return record
        return self._by_prefix(ref)

    def _by_prefix(self, ref: str) -> R | None:
        if not ref:
            return None
        found: R | None = None
        for record_id, record in self.by_id.items():
            if record_id.startswith(ref):
                if found is not None:
                    return None
                found = record
        return found

    def new_id(self, requested: str | None) -> str:
        if requested:
            return requested
        return generate_id(lambda c: c in self.by_id)

    def check_names_free(self, names: list[str], *, exclude: str = "") -> None:
        for name in names:
            owner = self.by_name.get(name)
            if owner is not None and owner.id != exclude:
                raise self.duplicate_name_error(name, owner.id)

    def duplicate_name_error(self, name: str, owner_id: str) -> DuplicateName:
        return DuplicateName(
            f"{self.kind} name {goquote(name)} is already associated with {self.kind} {goquote(owner_id)}")

    def add(self, record: R) -> None:
        self.records.append(record)
        self.by_id[record.id] = record
        for name in record.names:
            self.by_name[name] = record

    def remove(self, record: R) -> None:
        self.records = [r for r in self.records if r is not record]
        self.by_id.pop(record.id, None)
        for name in record.names:
            if self.by_name.get(name) is record:
                del self.by_name[name]

    def _take_names(self, record: R, names: list[str]) -> None:
        """Give *names* to *record*, silently removing them from other records."""
        for name in names:
            other = self.by_name.get(name)
            if other is not None and other is not record:
                other.names = [n for n in other.names if n != name]
        record.names = names
        self._rebuild_indexes()

    def set_names(self, record: R, names: list[str]) -> None:
        self._take_names(record, dedup(names))

    def add_names(self, record: R, names: list[str]) -> None:
        # HEAD puts new names first (1.43 appended them).
        self._take_names(record, dedup(list(names) + record.names))

    def remove_names(self, record: R, names: list[str]) -> None:
        drop = set(names)
        record.names = [n for n in record.names if n not in drop]
        self._rebuild_indexes()

    # --------------------------------------------------------------- big data

    def bigdata_dir(self, record_id: str) -> str:
        return os.path.join(self.dir, record_id)

    def bigdata_path(self, record_id: str, key: str) -> str:
        return os.path.join(self.bigdata_dir(record_id), bigdata_file_name(key))

    def write_bigdata(self, record_id: str, key: str, data: bytes) -> None:
        path = self.bigdata_path(record_id, key)
        atomicio.ensure_dir(os.path.dirname(path))
        atomicio.write_file(path, data, durable=self.durable)

    def _pending_path(self, record_id: str, key: str) -> str:
        path = self.bigdata_path(record_id, key)
        return os.path.join(os.path.dirname(path), ".pending-" + os.path.basename(path))

    def write_bigdata_pending(self, record: R, key: str, data: bytes) -> None:
        """First step of replacing a big-data item: its new content, beside the old one.

        The caller then records the new size/digest together with the
        PENDING_BIG_DATA flag, saves, and calls :meth:`commit_pending_bigdata`.
        A crash before the save leaves the old item and record (the pending
        file is litter); after it, the next writer rolls the item forward.
        """
        pending = self._pending_path(record.id, key)
        atomicio.ensure_dir(os.path.dirname(pending))
        atomicio.write_file(pending, data, durable=self.durable)
        record.flags = {**record.flags, PENDING_BIG_DATA: [key]}

    def commit_pending_bigdata(self, record: R) -> None:
        """Move pending items into place and clear the flag (the caller saves)."""
        keys = record.flags.get(PENDING_BIG_DATA) or []
        for key in keys if isinstance(keys, list) else []:
            pending = self._pending_path(record.id, str(key))
            if os.path.exists(pending):
                os.replace(pending, self.bigdata_path(record.id, str(key)))
                if self.durable:
                    atomicio.fsync_dir(os.path.dirname(pending))
        record.flags = {k: v for k, v in record.flags.items() if k != PENDING_BIG_DATA}

    def read_bigdata(self, record_id: str, key: str) -> bytes:
        with open(self.bigdata_path(record_id, key), "rb") as f:
            return f.read()


def remove_tree(path: str) -> None:
    """Remove *path* recursively without following symlinks; missing is fine."""
    import shutil

    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except PermissionError:
        # Unprivileged callers can't empty 0555 layer roots: open them up first.
        for root, dirs, _files in os.walk(path):
            for d in dirs:
                full = os.path.join(root, d)
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
        os.chmod(path, 0o700)
        shutil.rmtree(path)
