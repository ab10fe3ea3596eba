"""The layer store: ``<drv>-layers/layers.json``, mount counts, tar-split and big data.

The store holds the records and mount table; the driver does the file-system
work.  Creation and deletion follow upstream's incomplete-flag protocol so a
crash half-way leaves a record that the next writer cleans up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import _log, atomicio
from ._recordstore import RecordFile, RecordStore, dedup, remove_tree
from .errors import (
    CorruptMetadata,
    DuplicateID,
    DuplicateName,
    ItemNotFound,
    LayerNotMounted,
    LayerUnknown,
    ParentUnknown,
    goquote,
)
from .lockfile import LockFile, get_lockfile
from .records import IDMap, Layer, go_json, json_loads, now_text, validate_digest

if TYPE_CHECKING:
    from collections.abc import Callable

    from .creation import LayerOptions
    from .drivers.base import Driver, MountOptions, Staging
    from .layerdata import Extracted

STABLE = "stable"
VOLATILE = "volatile"
_INCOMPLETE = "incomplete"


class LayerStore(RecordStore[Layer]):
    record_type = Layer
    kind = "layer"
    check_mtimes = True

    def __init__(self, graph_root: str, run_root: str, driver_name: str, driver: Callable[[], Driver], *,
                 transient: bool = False, read_only: bool = False, durable: bool = True) -> None:
        directory = os.path.join(graph_root, f"{driver_name}-layers")
        run_dir = os.path.join(run_root, f"{driver_name}-layers")
        volatile_dir = run_dir if transient else directory
        files = [
            RecordFile(os.path.join(directory, "layers.json"), STABLE),
            RecordFile(os.path.join(volatile_dir, "volatile-layers.json"), VOLATILE, durable=False),
        ]
        # The driver, asked for when needed: reading the records never needs it.
        self._driver_of = driver
        self.run_dir = run_dir
        self._recovered = False
        self._by_compressed: dict[str, list[Layer]] = {}
        self._by_uncompressed: dict[str, list[Layer]] = {}
        super().__init__(directory, os.path.join(directory, "layers.lock"), files,
                         read_only=read_only, durable=durable)
        if not read_only:
            atomicio.ensure_dir(run_dir)
            self.mounts_lock: LockFile | None = get_lockfile(os.path.join(run_dir, "mountpoints.lock"))
        else:
            self.mounts_lock = None
        self.mounts_path = os.path.join(run_dir, "mountpoints.json")

    @property
    def driver(self) -> Driver:
        return self._driver_of()

    # ------------------------------------------------------------ load / save

    def _on_load_record(self, record: Layer, location: str) -> None:
        if location == VOLATILE:
            record.volatile = True
        if self.read_only:
            record.read_only = True

    def location_of(self, record: Layer) -> str:
        return VOLATILE if record.volatile else STABLE

    def _build_indexes(self) -> None:
        super()._build_indexes()
        by_c: dict[str, list[Layer]] = {}
        by_u: dict[str, list[Layer]] = {}
        for layer in self.records:
            if layer.compressed_digest:
                by_c.setdefault(layer.compressed_digest, []).append(layer)
            if layer.uncompressed_digest:
                by_u.setdefault(layer.uncompressed_digest, []).append(layer)
        self._by_compressed = by_c
        self._by_uncompressed = by_u

    def load(self) -> None:
        super().load()
        self._load_mounts_locked()

    def needs_fixup(self) -> bool:
        return self.has_incomplete()

    def _after_load(self) -> None:
        super()._after_load()
        # The first load under the write lock also repairs what a crash can leave in the
        # driver (dead staging directories, lost overlay links): cheap when all is well.
        if self.lock.locked_for_writing and not self._recovered and not self.read_only:
            self._recovered = True
            self.driver.recover()

    def fixup(self) -> None:
        self._clean_incomplete()

    def _clean_incomplete(self) -> None:
        # Staging directories whose extraction died with its process go too
        # (live ones hold their lock and are kept).
        self.driver.clean_stale_staging()
        for layer in [layer for layer in self.records if layer.incomplete]:
            _log.warning('Found incomplete layer "%s", deleting it', layer.id)
            self._delete_data(layer)
            self.remove(layer)

    def has_incomplete(self) -> bool:
        return any(layer.incomplete for layer in self.records)

    def save(self, locations: set[str] | None = None) -> None:
        super().save(locations)
        self._save_mounts()

    # ------------------------------------------------------------ mount table

    def _load_mounts_locked(self) -> None:
        if self.mounts_lock is None:
            return
        with self.mounts_lock.reading():
            self.mounts_lock.modified()
            self._load_mounts()

    def _load_mounts(self) -> None:
        for layer in self.records:
            layer.mount_point, layer.mount_count = "", 0
        data = atomicio.read_file(self.mounts_path)
        if not data.strip():
            return
        try:
            entries = json_loads(data) or []
        except ValueError as exc:
            raise CorruptMetadata(f"loading {self.mounts_path}: {exc}") from exc
        for entry in entries:
            mounted = self.by_id.get(entry.get("id", ""))
            if mounted is not None:
                mounted.mount_point = entry.get("path") or ""
                mounted.mount_count = int(entry.get("count") or 0)

    def _save_mounts(self) -> None:
        if self.mounts_lock is None:
            return
        with self.mounts_lock.writing():
            self.mounts_lock.record_write()
            table = [{"id": layer.id, "path": layer.mount_point, "count": layer.mount_count}
                     for layer in self.records if layer.mount_count > 0]
            atomicio.write_file(self.mounts_path, go_json(table), durable=False)

    @contextmanager
    def mounts_writing(self) -> Iterator[None]:
        """Hold the mount table for an update (inside the layers lock)."""
        assert self.mounts_lock is not None
        with self.mounts_lock.writing():
            if self.mounts_lock.modified():
                self._load_mounts()
            yield

    def _refresh_mounts(self) -> None:
        if self.mounts_lock is not None:
            with self.mounts_lock.reading():
                if self.mounts_lock.modified():
                    self._load_mounts()

    # --------------------------------------------------------------- queries

    def duplicate_name_error(self, name: str, owner_id: str) -> DuplicateName:
        # Upstream's layer store returns the bare sentinel (images and containers say more).
        return DuplicateName()

    def require(self, ref: str) -> Layer:
        layer = self.get(ref)
        if layer is None:
            raise LayerUnknown()
        return layer

    def children(self, layer_id: str) -> list[Layer]:
        return [layer for layer in self.records if layer.parent == layer_id]

    def tar_split_path(self, layer_id: str) -> str:
        return os.path.join(self.dir, f"{layer_id}.tar-split.gz")

    def by_digest(self, digest: str, compressed: bool) -> list[Layer]:
        validate_digest(digest)
        self._ensure_indexes()
        found = (self._by_compressed if compressed else self._by_uncompressed).get(digest)
        if not found:
            raise LayerUnknown()
        return list(found)

    # ------------------------------------------------------------- mutations

    def create(self, layer_id: str | None, parent: Layer | None, names: list[str], mount_label: str,
               writeable: bool, options: LayerOptions, uidmap: list[IDMap], gidmap: list[IDMap],
               storage_opt: dict[str, str] | None = None, staged: tuple[Staging, Extracted] | None = None,
               ) -> Layer:
        """Create a layer record and its driver data (write lock held by caller).

        With *staged*, the driver data was already extracted into a staging
        directory: it is renamed into place and the diff's digests recorded.
        """
        if parent is not None and parent.id not in self.by_id:
            raise ParentUnknown()
        if layer_id and layer_id in self.by_id:
            raise DuplicateID()
        names = dedup(names)
        self.check_names_free(names)
        layer = Layer(
            id=self.new_id(layer_id),
            names=names,
            parent=parent.id if parent else "",
            mount_label=mount_label,
            created=now_text(),
            uidmap=list(uidmap),
            gidmap=list(gidmap),
            flags={**options.flags, _INCOMPLETE: True},
        )
        layer.volatile = options.volatile
        if options.uncompressed_digest:
            layer.uncompressed_digest = validate_digest(options.uncompressed_digest)
        if options.original_digest:
            layer.compressed_digest = validate_digest(options.original_digest)
            if options.original_size is not None:
                layer.compressed_size = options.original_size
        self.add(layer)
        self.save({self.location_of(layer)})
        try:
            from .drivers.base import CreateOptions

            create_opts = CreateOptions(mount_label=mount_label, uidmap=layer.uidmap, gidmap=layer.gidmap,
                                        storage_opt=dict(storage_opt or {}), read_only=not writeable)
            if staged is None:
                self.driver.create(layer.id, layer.parent or None, create_opts)
            else:
                staging, extracted = staged
                self.driver.commit_staged(layer.id, layer.parent or None, create_opts, staging)
                self._record_diff(layer, extracted, options)
            for key, data in options.big_data.items():
                self.write_bigdata(layer.id, key, data)
                if key not in layer.big_data_names:
                    layer.big_data_names = [*layer.big_data_names, key]
            if self.durable:
                # The layer's files must be on disk before the record says it is complete.
                atomicio.sync_filesystem(self.driver.layer_dir(layer.id))
        except BaseException:
            self._delete_data(layer)
            self.remove(layer)
            self.save({self.location_of(layer)})
            raise
        layer.flags = {k: v for k, v in layer.flags.items() if k != _INCOMPLETE}
        self._rebuild_indexes()
        self.save({self.location_of(layer)})
        return layer

    def _record_diff(self, layer: Layer, extracted: Extracted, options: LayerOptions | None) -> None:
        """Move the tar-split file into place and record what the applied diff was."""
        os.replace(extracted.tarsplit_path, self.tar_split_path(layer.id))
        layer.compression = extracted.compression
        if options is not None and options.original_digest:
            layer.compressed_digest = validate_digest(options.original_digest)
            layer.compressed_size = options.original_size or 0
        else:
            layer.compressed_digest = extracted.compressed_digest
            layer.compressed_size = extracted.compressed_size
        if options is not None and options.uncompressed_digest:
            layer.uncompressed_digest = validate_digest(options.uncompressed_digest)
        else:
            layer.uncompressed_digest = extracted.uncompressed_digest
        layer.uncompressed_size = extracted.uncompressed_size
        layer.uidset = sorted(set(extracted.uidset))
        layer.gidset = sorted(set(extracted.gidset))
        self._rebuild_indexes()

    def record_applied_diff(self, layer: Layer, extracted: Extracted) -> None:
        """After ApplyDiff on an existing layer: record the diff and save."""
        if self.durable:
            atomicio.sync_filesystem(self.driver.layer_dir(layer.id))
        self._record_diff(layer, extracted, None)
        self.save({self.location_of(layer)})

    def delete(self, layer: Layer) -> None:
        """Delete *layer*: flag it incomplete first so a crash can't leave it half-there."""
        if layer.mount_count > 0:
            with self.mounts_writing():
                while layer.mount_count > 0:
                    self._unmount_locked(layer, force=True)
        layer.flags = {**layer.flags, _INCOMPLETE: True}
        self.save({self.location_of(layer)})
        self._delete_data(layer)
        self.remove(layer)
        self._rebuild_indexes()
        self.save({self.location_of(layer)})

    def _delete_data(self, layer: Layer) -> None:
        try:
            self.driver.remove(layer.id)
        except FileNotFoundError:
            pass
        for path in (self.tar_split_path(layer.id),):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        remove_tree(self.bigdata_dir(layer.id))

    def remove(self, record: Layer) -> None:
        super().remove(record)
        self._rebuild_indexes()

    def set_metadata(self, layer: Layer, metadata: str) -> None:
        layer.metadata = metadata
        self.save({self.location_of(layer)})

    def set_bigdata(self, layer: Layer, key: str, data: bytes) -> None:
        self.write_bigdata(layer.id, key, data)
        if key not in layer.big_data_names:
            layer.big_data_names = [*layer.big_data_names, key]
            self.save({self.location_of(layer)})

    def get_bigdata(self, layer: Layer, key: str) -> bytes:
        try:
            return self.read_bigdata(layer.id, key)
        except FileNotFoundError as exc:
            raise ItemNotFound(
                f"locating item named {goquote(key)} for layer with ID {goquote(layer.id)}") from exc

    # ---------------------------------------------------------------- mounts

    def mount(self, layer: Layer, opts: MountOptions) -> str:
        with self.mounts_writing():
            if layer.mount_count > 0 and self.driver.is_mounted(layer.id, layer.mount_point):
                layer.mount_count += 1
            else:
                path = self.driver.mount(layer.id, opts)
                layer.mount_point = os.path.normpath(path)
                layer.mount_count = 1
            self._write_mounts_locked()
            return layer.mount_point

    def unmount(self, layer: Layer, force: bool) -> bool:
        """Drop one mount (all with *force*); returns whether it is still mounted."""
        with self.mounts_writing():
            if layer.mount_count == 0:
                return False
            self._unmount_locked(layer, force)
            self._write_mounts_locked()
            return layer.mount_count > 0

    def _unmount_locked(self, layer: Layer, force: bool) -> None:
        if force:
            layer.mount_count = 1
        if layer.mount_count > 1:
            layer.mount_count -= 1
            return
        self.driver.unmount(layer.id)
        layer.mount_count = 0
        layer.mount_point = ""

    def _write_mounts_locked(self) -> None:
        assert self.mounts_lock is not None
        self.mounts_lock.record_write()
        table = [{"id": layer.id, "path": layer.mount_point, "count": layer.mount_count}
                 for layer in self.records if layer.mount_count > 0]
        atomicio.write_file(self.mounts_path, go_json(table), durable=False)

    def by_mount_path(self, path: str) -> Layer | None:
        path = os.path.normpath(path)
        for layer in self.records:
            if layer.mount_count > 0 and layer.mount_point == path:
                return layer
        return None

    def mounted_count(self, layer: Layer) -> int:
        self._refresh_mounts()
        return layer.mount_count

    def parent_owners(self, layer: Layer) -> tuple[list[int], list[int]]:
        """Owners of the mount point's parent dirs that the layer's maps don't cover."""
        if not layer.uidmap and not layer.gidmap:
            return [], []
        if layer.mount_count == 0:
            raise LayerNotMounted(f"layer {goquote(layer.id)}")
        uids: set[int] = set()
        gids: set[int] = set()
        path = layer.mount_point
        while True:
            parent = os.path.dirname(path)
            if parent == path:
                break
            st = os.lstat(parent)
            if not any(m.host_id <= st.st_uid < m.host_id + m.size for m in layer.uidmap):
                uids.add(st.st_uid)
            if not any(m.host_id <= st.st_gid < m.host_id + m.size for m in layer.gidmap):
                gids.add(st.st_gid)
            path = parent
        return sorted(uids), sorted(gids)
