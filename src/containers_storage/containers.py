"""The container store: ``<drv>-containers/containers.json`` (+ volatile file) and big data."""

from __future__ import annotations

import os
from typing import Any

from ._recordstore import RecordFile, RecordStore, dedup, remove_tree
from .errors import ContainerUnknown, DuplicateID, DuplicateName, ItemNotFound, SizeUnknown, goquote
from .records import Container, IDMap, now_text, sha256_digest

STABLE = "stable"
VOLATILE = "volatile"


class ContainerStore(RecordStore[Container]):
    record_type = Container
    kind = "container"

    def __init__(self, graph_root: str, run_root: str, driver_name: str, *, transient: bool = False,
                 durable: bool = True) -> None:
        directory = os.path.join(graph_root, f"{driver_name}-containers")
        self.run_dir = os.path.join(run_root, f"{driver_name}-containers")
        self.transient = transient
        # Transient mode keeps every container record in the run root.
        meta_dir = self.run_dir if transient else directory
        files = [RecordFile(os.path.join(directory, "containers.json"), STABLE),
                 RecordFile(os.path.join(meta_dir, "volatile-containers.json"), VOLATILE, durable=False)]
        if transient:
            files = files[1:]
        super().__init__(directory, os.path.join(meta_dir, "containers.lock"), files, durable=durable)
        self._by_layer: dict[str, Container] = {}

    def _on_load_record(self, record: Container, location: str) -> None:
        if location == VOLATILE:
            record.volatile_file = True

    def location_of(self, record: Container) -> str:
        return VOLATILE if record.volatile_file or self.transient else STABLE

    def _build_indexes(self) -> None:
        super()._build_indexes()
        self._by_layer = {c.layer: c for c in self.records if c.layer}

    @property
    def by_layer(self) -> dict[str, Container]:
        self._ensure_indexes()
        return self._by_layer

    def get(self, ref: str) -> Container | None:
        found = self.by_id.get(ref) or self.by_name.get(ref) or self.by_layer.get(ref)
        return found if found is not None else self._by_prefix(ref)

    def require(self, ref: str) -> Container:
        container = self.get(ref)
        if container is None:
            raise ContainerUnknown()
        return container

    def duplicate_name_error(self, name: str, owner_id: str) -> DuplicateName:
        return DuplicateName(
            f"the container name {goquote(name)} is already in use by {owner_id}. "
            "You have to remove that container to be able to reuse that name")

    def create(self, container_id: str, names: list[str], image: str, layer: str, metadata: str,
               flags: dict[str, Any], uidmap: list[IDMap], gidmap: list[IDMap],
               volatile: bool, big_data: dict[str, bytes]) -> Container:
        if container_id in self.by_id:
            raise DuplicateID()
        names = dedup(names)
        self.check_names_free(names)
        container = Container(id=container_id, names=names, image=image, layer=layer, metadata=metadata,
                              created=now_text(), uidmap=list(uidmap), gidmap=list(gidmap),
                              flags=dict(flags))
        container.volatile_file = volatile
        for key, data in big_data.items():
            self._store_bigdata(container, key, data)
        self.add(container)
        self._rebuild_indexes()
        self.save({self.location_of(container)})
        return container

    def delete(self, container: Container) -> None:
        self.remove(container)
        self._rebuild_indexes()
        self.save({self.location_of(container)})
        remove_tree(self.bigdata_dir(container.id))
        remove_tree(os.path.join(self.run_dir, container.id))

    def set_metadata(self, container: Container, metadata: str) -> None:
        container.metadata = metadata
        self.save({self.location_of(container)})

    def _store_bigdata(self, container: Container, key: str, data: bytes) -> None:
        self.write_bigdata(container.id, key, data)
        self._note_bigdata(container, key, data)

    def _note_bigdata(self, container: Container, key: str, data: bytes) -> None:
        # New containers rather than in-place changes: callers may hold shallow copies.
        if key not in container.big_data_names:
            container.big_data_names = [*container.big_data_names, key]
        container.big_data_sizes = {**container.big_data_sizes, key: len(data)}
        container.big_data_digests = {**container.big_data_digests,
                                      key: sha256_digest(data)}

    def set_bigdata(self, container: Container, key: str, data: bytes) -> None:
        location = {self.location_of(container)}
        if key not in container.big_data_names:
            self._store_bigdata(container, key, data)
            self.save(location)
            return
        # Replacing: new content and its digest must change together, even across a crash.
        self.write_bigdata_pending(container, key, data)
        self._note_bigdata(container, key, data)
        self.save(location)
        self.commit_pending_bigdata(container)
        self.save(location)

    def get_bigdata(self, container: Container, key: str) -> bytes:
        try:
            return self.read_bigdata(container.id, key)
        except FileNotFoundError as exc:
            raise ItemNotFound(
                f"locating item named {key!r} for container with ID {container.id!r}") from exc

    def bigdata_size(self, container: Container, key: str) -> int:
        """Recorded size; a missing one is recomputed and saved (needs the write lock)."""
        size = container.big_data_sizes.get(key)
        if size is not None:
            return size
        try:
            data = self.read_bigdata(container.id, key)
        except OSError as exc:
            raise SizeUnknown() from exc
        self._store_bigdata(container, key, data)
        self.save({self.location_of(container)})
        return len(data)

    def bigdata_digest(self, container: Container, key: str) -> str:
        digest = container.big_data_digests.get(key)
        if digest:
            return digest
        from .errors import DigestUnknown

        try:
            data = self.read_bigdata(container.id, key)
        except OSError as exc:
            raise DigestUnknown() from exc
        self._store_bigdata(container, key, data)
        self.save({self.location_of(container)})
        return container.big_data_digests[key]
