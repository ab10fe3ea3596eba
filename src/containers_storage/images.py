"""The image store: ``<drv>-images/images.json`` and image big data."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._recordstore import RecordFile, RecordStore, dedup, remove_tree
from .errors import DigestUnknown, DuplicateID, ImageUnknown, ItemNotFound, SizeUnknown, goquote, plain
from .records import Image, Timestamp, sha256_digest, validate_digest

if TYPE_CHECKING:
    from .creation import ImageOptions

STABLE = "stable"


class ImageStore(RecordStore[Image]):
    record_type = Image
    kind = "image"

    def __init__(self, graph_root: str, driver_name: str, *, read_only: bool = False,
                 durable: bool = True) -> None:
        directory = os.path.join(graph_root, f"{driver_name}-images")
        super().__init__(directory, os.path.join(directory, "images.lock"),
                         [RecordFile(os.path.join(directory, "images.json"), STABLE)],
                         read_only=read_only, durable=durable)
        self._by_digest: dict[str, list[Image]] = {}

    def _on_load_record(self, record: Image, location: str) -> None:
        # Image.from_json already computed the digest list.
        if self.read_only:
            record.read_only = True

    @property
    def by_digest(self) -> dict[str, list[Image]]:
        self._ensure_indexes()
        return self._by_digest

    def _build_indexes(self) -> None:
        super()._build_indexes()
        by_digest: dict[str, list[Image]] = {}
        for image in self.records:
            for digest in image.digests:
                by_digest.setdefault(digest, []).append(image)
        self._by_digest = by_digest

    def require(self, ref: str) -> Image:
        image = self.get(ref)
        if image is None:
            raise ImageUnknown(f"locating image with ID {goquote(ref)}")
        return image

    def by_top_layer(self, layer_id: str) -> list[Image]:
        return [img for img in self.records
                if img.top_layer == layer_id or layer_id in img.mapped_top_layers]

    def create(self, image_id: str | None, names: list[str], top_layer: str, metadata: str,
               options: ImageOptions) -> Image:
        if image_id and image_id in self.by_id:
            raise DuplicateID()
        names = dedup(names)
        self.check_names_free(names)
        digest = options.digest
        try:
            if digest:
                validate_digest(digest)
            for d in options.digests:
                validate_digest(d)
        except Exception as exc:
            raise plain(f"validating digests for new image: {exc}") from exc
        image = Image(
            id=self.new_id(image_id),
            digest=digest or (options.digests[0] if options.digests else ""),
            names=names,
            names_history=list(options.names_history),
            top_layer=top_layer,
            metadata=metadata or options.metadata,
            created=(options.created or Timestamp.now()).format(),
            flags=dict(options.flags),
        )
        for item in options.big_data:
            self._store_bigdata(image, item.key, item.data, item.digest or None)
        image.recompute_digests()
        extra = [d for d in options.digests if d not in image.digests]
        if extra:
            image.digests = [*image.digests, *extra]
        self.add(image)
        self._rebuild_indexes()
        self.save()
        return image

    def delete(self, image: Image) -> None:
        self.remove(image)
        self._rebuild_indexes()
        self.save()
        remove_tree(self.bigdata_dir(image.id))

    def set_metadata(self, image: Image, metadata: str) -> None:
        image.metadata = metadata
        self.save()

    def record_names_history(self, image: Image) -> None:
        """Move each current name to the front of the history, last name ending first."""
        history = list(image.names_history)
        for name in image.names:
            history = [name] + [h for h in history if h != name]
        image.names_history = history

    def _store_bigdata(self, image: Image, key: str, data: bytes, digest: str | None) -> None:
        self.write_bigdata(image.id, key, data)
        self._note_bigdata(image, key, data, digest)

    def _note_bigdata(self, image: Image, key: str, data: bytes, digest: str | None) -> None:
        # New containers rather than in-place changes: callers may hold shallow copies.
        if key not in image.big_data_names:
            image.big_data_names = [*image.big_data_names, key]
        image.big_data_sizes = {**image.big_data_sizes, key: len(data)}
        image.big_data_digests = {**image.big_data_digests,
                                  key: digest or sha256_digest(data)}

    def set_bigdata(self, image: Image, key: str, data: bytes,
                    digest_manifest: Callable[[bytes], str] | None) -> None:
        digest = None
        if key.startswith("manifest"):
            if digest_manifest is None:
                raise DigestUnknown("no manifest digest callback provided")
            digest = digest_manifest(data)
        replacing = key in image.big_data_names
        if replacing:
            # New content and its digest must change together, even across a crash.
            self.write_bigdata_pending(image, key, data)
        else:
            self.write_bigdata(image.id, key, data)
        self._note_bigdata(image, key, data, digest)
        image.recompute_digests()
        self._rebuild_indexes()
        self.save()
        if replacing:
            self.commit_pending_bigdata(image)
            self.save()

    def get_bigdata(self, image: Image, key: str) -> bytes:
        try:
            return self.read_bigdata(image.id, key)
        except FileNotFoundError as exc:
            raise ItemNotFound(
                f"locating item named {goquote(key)} for image with ID {goquote(image.id)} "
                "(consider removing the image to resolve the issue)") from exc

    def bigdata_size(self, image: Image, key: str) -> int:
        size = image.big_data_sizes.get(key)
        if size is not None:
            return size
        try:
            return os.path.getsize(self.bigdata_path(image.id, key))
        except OSError as exc:
            raise SizeUnknown() from exc

    def bigdata_digest(self, image: Image, key: str) -> str:
        digest = image.big_data_digests.get(key)
        if digest:
            return digest
        raise DigestUnknown()
