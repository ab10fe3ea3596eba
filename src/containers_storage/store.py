"""The store facade: one graph root, one run root, one driver, three record stores.

Every public method takes the locks upstream takes (on-disk-format.md §13.3)
in upstream's order, reloads what another process changed, and releases them
before returning.  Returned records are copies.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from . import atomicio
from ._recordstore import generate_id, remove_tree
from .drivers import DEFAULT_PRIORITY, KNOWN_DRIVERS, canonical_name, driver_class, prior_drivers
from .errors import (
    ContainerUnknown,
    DriverError,
    ImageUnknown,
    ImageUsedByContainer,
    IncompleteOptions,
    LayerHasChildren,
    LayerMounted,
    LayerUnknown,
    LayerUsedByContainer,
    LayerUsedByImage,
    NoSupportedDriver,
    NotAContainer,
    NotALayer,
    NotAnID,
    NotAnImage,
    ParentIsContainer,
    SizeUnknown,
    StoreIsReadOnly,
    goquote,
    plain,
)
from .images import ImageStore
from .lockfile import LockFile, get_lockfile
from .records import Container, IDMap, Image, Layer, clone

if TYPE_CHECKING:
    from typing import BinaryIO

    from .archive.changes import Change
    from .check import CheckOptions, CheckReport
    from .containers import ContainerStore
    from .creation import ContainerOptions, ImageOptions, LayerOptions
    from .drivers.base import Driver, MountOptions
    from .errors import StorageError
    from .layers import LayerStore
    from .options import StoreOptions

VERSION = "1.60.0-dev"

_cache: dict[tuple[str, str, str], Store] = {}
_cache_lock = threading.Lock()


R = TypeVar("R", Layer, Image, Container)


def _copy(record: R) -> R:
    """A copy of a record, so callers can't change the store's state through it."""
    return clone(record)


def _copies(records: Iterable[R]) -> list[R]:
    return [clone(r) for r in records]


class Store:
    """A containers/storage store shared with podman and the Go library."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self.graph_root = options.graph_root
        self.run_root = options.run_root
        self.image_store = options.image_store
        self.transient_store = options.transient_store
        self.graph_options = list(options.driver_options)
        self.uidmap: list[IDMap] = list(options.uidmap)
        self.gidmap: list[IDMap] = list(options.gidmap)
        # Syncing is on unless the options or CONTAINERS_STORAGE_SYNC=0 turn it off
        # (for throw-away stores: a crash may then lose recent changes).
        self.durable = options.durable and os.environ.get("CONTAINERS_STORAGE_SYNC", "1") != "0"
        atomicio.ensure_dir(self.graph_root)
        atomicio.ensure_dir(self.run_root)
        self.graph_lock: LockFile = get_lockfile(os.path.join(self.graph_root, "storage.lock"))
        self._driver: Driver | None = None
        if options.driver_name:
            # A named driver is set up on first use: image and container records never need
            # it, and setting it up (overlay: feature checks, the home mount) costs more than
            # listing them.  Unknown names still fail here.
            self.graph_driver_name = canonical_name(options.driver_name)
            if self.graph_driver_name not in KNOWN_DRIVERS:
                driver_class(options.driver_name)  # raises upstream's "driver not supported"
        else:
            self._init_driver()  # choosing one means trying them
        self._layers: LayerStore | None = None
        self._images: ImageStore | None = None
        self._containers: ContainerStore | None = None

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, options: StoreOptions | None = None) -> Store:
        """Open (or return the cached) store for *options*; None means the defaults."""
        from .options import default_store_options

        if options is None or not (options.graph_root or options.run_root or options.driver_name
                                   or options.driver_options):
            options = default_store_options()
        elif not options.graph_root and not options.run_root:
            raise IncompleteOptions("no storage runroot or graphroot specified")
        else:
            options = options.copy()
            if not options.graph_root or not options.run_root:
                defaults = default_store_options()
                options.graph_root = options.graph_root or defaults.graph_root
                options.run_root = options.run_root or defaults.run_root
        options.graph_root = os.path.abspath(options.graph_root)
        options.run_root = os.path.abspath(options.run_root)
        key = (options.graph_root, options.run_root, canonical_name(options.driver_name))
        with _cache_lock:
            store = _cache.get(key)
            if store is None:
                store = cls(options)
                _cache[key] = store
                if options.driver_name == "":
                    _cache[(key[0], key[1], store.graph_driver_name)] = store
            return store

    def free(self) -> None:
        """Forget the in-process cache entry of this store."""
        with _cache_lock:
            for key in [k for k, v in _cache.items() if v is self]:
                del _cache[key]

    @property
    def driver(self) -> Driver:
        """The graph driver, set up on first use (errors in its options surface then)."""
        if self._driver is None:
            self._init_driver()
            assert self._driver is not None
        return self._driver

    @driver.setter
    def driver(self, value: Driver) -> None:
        self._driver = value

    def _init_driver(self) -> None:
        with self.graph_lock.writing():
            self.graph_lock.modified()
            self._driver = self._load_driver(self.options)
        self.graph_driver_name = self._driver.name

    def _load_driver(self, options: StoreOptions) -> Driver:
        from .drivers.base import DriverOptions

        def make(name: str) -> Driver:
            cls = driver_class(name)
            return cls(DriverOptions(
                home=os.path.join(self.graph_root, cls.name),
                run_home=os.path.join(self.run_root, cls.name),
                options=list(options.driver_options), uidmap=self.uidmap, gidmap=self.gidmap))

        if options.driver_name:
            return make(options.driver_name)
        priority = list(options.driver_priority) or DEFAULT_PRIORITY
        explicit = bool(options.driver_priority)
        prior = prior_drivers(self.graph_root)
        for name in map(canonical_name, priority):
            # vfs state alone doesn't pin the driver unless vfs was asked for.
            if name == "vfs" and not explicit:
                continue
            if name in prior:
                if len(prior) > 1:
                    raise DriverError(sentinel=(
                        f"{self.graph_root} contains several valid graphdrivers: {', '.join(prior)}; "
                        "Please cleanup or explicitly choose storage driver (-s <DRIVER>)"))
                return make(name)
        for name in [canonical_name(n) for n in priority]:
            try:
                cls = driver_class(name)
            except DriverError:
                continue
            if cls.supported(os.path.join(self.graph_root, cls.name)):
                return make(name)
        raise NoSupportedDriver()

    # ------------------------------------------------------- record stores

    @property
    def layer_store(self) -> LayerStore:
        if self._layers is None:
            from .layers import LayerStore

            self._layers = LayerStore(self.graph_root, self.run_root, self.graph_driver_name, lambda: self.driver,
                                      transient=self.transient_store, durable=self.durable)
        return self._layers

    @property
    def image_store_records(self) -> ImageStore:
        if self._images is None:
            self._images = ImageStore(self.graph_root, self.graph_driver_name, durable=self.durable)
        return self._images

    @property
    def container_store(self) -> ContainerStore:
        if self._containers is None:
            from .containers import ContainerStore

            self._containers = ContainerStore(self.graph_root, self.run_root, self.graph_driver_name,
                                              transient=self.transient_store, durable=self.durable)
        return self._containers

    def _check_shutdown_by_others(self) -> None:
        """Re-initialise the driver when another process ran Shutdown (new storage.lock ID)."""
        if self._driver is None:
            return  # not set up yet: its first use sets it up afresh
        with self.graph_lock.writing():
            if self.graph_lock.modified():
                self.driver = self._load_driver(self.options)

    @contextmanager
    def _locked(self, layers: str = "", images: str = "", containers: str = "",
                graph: bool = False, driver: bool = True) -> Iterator[None]:
        """Take the requested locks ('r' or 'w') in upstream's global order.

        With *layers*, the driver is set up first (unless *driver* is False: the caller only
        reads records), since setting it up takes the graph lock, which goes before the others.
        """
        if layers and driver and not graph:
            self.driver  # noqa: B018
        with ExitStack() as stack:
            if graph:
                stack.enter_context(self.graph_lock.writing())
                # Set up here if not yet: under this lock, the property's own locking would nest.
                if self.graph_lock.modified() or self._driver is None:
                    self.driver = self._load_driver(self.options)
            elif layers:
                self._check_shutdown_by_others()
            if layers:
                ls = self.layer_store
                stack.enter_context(ls.writing() if layers == "w" else ls.reading())
            if images:
                st = self.image_store_records
                stack.enter_context(st.writing() if images == "w" else st.reading())
            if containers:
                cs = self.container_store
                stack.enter_context(cs.writing() if containers == "w" else cs.reading())
            yield

    # ------------------------------------------------------------ accessors

    def status(self) -> list[tuple[str, str]]:
        pairs = [("Root", self.graph_root), ("Run Root", self.run_root),
                 ("Driver Name", self.driver.name), ("Driver Options", "[" + " ".join(self.graph_options) + "]")]
        return pairs + self.driver.status()

    @staticmethod
    def version() -> list[tuple[str, str]]:
        return [("Version", VERSION)]

    # --------------------------------------------------------------- layers

    def _resolve_maps(self, id_mapping: Any, fallback_uid: list[IDMap],
                      fallback_gid: list[IDMap]) -> tuple[list[IDMap], list[IDMap]]:
        if self.driver.capabilities.supports_shifting:
            return [], []
        if id_mapping is None:
            return list(fallback_uid), list(fallback_gid)
        uidmap = [] if id_mapping.host_uid_mapping else list(id_mapping.uidmap or fallback_uid)
        gidmap = [] if id_mapping.host_gid_mapping else list(id_mapping.gidmap or fallback_gid)
        return uidmap, gidmap

    def create_layer(self, id: str | None = None, parent: str | None = None, names: Sequence[str] = (),
                     mount_label: str = "", writeable: bool = True,
                     options: LayerOptions | None = None) -> Layer:
        """Create a layer with no diff applied (upstream CreateLayer)."""
        if options is None:
            from .creation import LayerOptions

            options = LayerOptions()
        with self._locked(layers="w", containers="w"):
            return _copy(self._create_layer_locked(id, parent, list(names), mount_label, writeable, options))

    def _create_layer_locked(self, id: str | None, parent: str | None, names: list[str], mount_label: str,
                             writeable: bool, options: LayerOptions,
                             storage_opt: dict[str, str] | None = None) -> Layer:
        ls = self.layer_store
        parent_layer = None
        if parent:
            parent_layer = ls.get(parent)
            if parent_layer is None:
                raise LayerUnknown()
            if self.container_store.by_layer.get(parent_layer.id) is not None:
                raise ParentIsContainer(f"layer {parent_layer.id}")
        base_uid = parent_layer.uidmap if parent_layer else self.uidmap
        base_gid = parent_layer.gidmap if parent_layer else self.gidmap
        uidmap, gidmap = self._resolve_maps(options.id_mapping, base_uid, base_gid)
        return ls.create(id, parent_layer, names, mount_label, writeable, options, uidmap, gidmap,
                         storage_opt)

    def layer(self, ref: str) -> Layer:
        with self._locked(layers="r"):
            return _copy(self.layer_store.require(ref))

    def layers(self) -> list[Layer]:
        with self._locked(layers="r", driver=False):
            return _copies(self.layer_store.records)

    def layers_by_compressed_digest(self, digest: str) -> list[Layer]:
        with self._locked(layers="r"):
            return _copies(self.layer_store.by_digest(digest, compressed=True))

    def layers_by_uncompressed_digest(self, digest: str) -> list[Layer]:
        with self._locked(layers="r"):
            return _copies(self.layer_store.by_digest(digest, compressed=False))

    def layer_size(self, ref: str) -> int:
        layer = self.layer(ref)
        return layer.uncompressed_size if (layer.uncompressed_digest or layer.toc_digest) else -1

    def delete_layer(self, ref: str) -> None:
        """Delete a layer that nothing uses (upstream DeleteLayer).

        Upstream compares the *ref as given* with parents and image/container
        layers, so deleting by name skips every safety check; we resolve the
        ref first, which is what the code means to do.
        """
        with self._locked(layers="w", images="w", containers="w"):
            ls = self.layer_store
            layer = ls.get(ref)
            if layer is None:
                raise NotALayer()
            for child in ls.children(layer.id):
                raise LayerHasChildren(f"used by layer {child.id}")
            for image in self.image_store_records.records:
                if image.top_layer == layer.id:
                    raise LayerUsedByImage(f"layer {layer.id} used by image {image.id}")
            container = self.container_store.by_layer.get(layer.id)
            if container is not None:
                raise LayerUsedByContainer(f"layer {layer.id} used by container {container.id}")
            self._delete_layer_locked(layer)

    def _delete_layer_locked(self, layer: Layer) -> None:
        images = self.image_store_records
        changed = False
        for image in images.records:
            if layer.id in image.mapped_top_layers:
                image.mapped_top_layers = [m for m in image.mapped_top_layers if m != layer.id]
                changed = True
        if changed:
            images.save()
        self.layer_store.delete(layer)

    # ------------------------------------------------------------ layer data

    def _driver_tuning(self) -> dict[str, Any]:
        """Extraction settings: the driver's chown and mask options, and whether to sync."""
        return {
            "ignore_chown_errors": bool(getattr(self.driver, "ignore_chown_errors", False)),
            "force_mask": getattr(self.driver, "force_mask", None),
            "durable": self.durable,
        }

    def put_layer(self, id: str | None = None, parent: str | None = None, names: Sequence[str] = (),
                  mount_label: str = "", writeable: bool = True, options: LayerOptions | None = None,
                  diff: BinaryIO | None = None) -> tuple[Layer, int]:
        """Create a layer and apply *diff* (a tar, possibly compressed) to it.

        The tar is extracted into a driver staging directory without holding
        any store lock, so other processes keep listing, mounting and creating
        meanwhile; the layers lock is taken only to commit (a rename and the
        record).  A failure leaves no record and no staging leftovers.
        """
        if diff is None:
            return self.create_layer(id, parent, names, mount_label, writeable, options), 0
        if options is None:
            from .creation import LayerOptions

            options = LayerOptions()
        from . import layerdata
        from .drivers.base import CreateOptions

        names = list(names)
        # Fail early (and cheaply) on what we can check before the long extraction.
        with self._locked(layers="r", containers="r"):
            ls = self.layer_store
            parent_layer = self._check_new_layer(id, parent, names)
            uidmap, gidmap = self._resolve_maps(
                options.id_mapping, parent_layer.uidmap if parent_layer else self.uidmap,
                parent_layer.gidmap if parent_layer else self.gidmap)
        parent_id = parent_layer.id if parent_layer else None
        create_opts = CreateOptions(mount_label=mount_label, uidmap=uidmap, gidmap=gidmap,
                                    read_only=not writeable)
        staging = self.driver.stage(parent_id, create_opts)
        # Beside its final name: the driver's home may be a separate (bind) mount.
        tarsplit_tmp = layerdata.temp_tarsplit_path(self.layer_store.dir)
        try:
            extracted = layerdata.extract(
                diff, staging.root, whiteouts=staging.whiteouts, skip_root=staging.skip_root,
                tarsplit_path=tarsplit_tmp, uidmap=uidmap, gidmap=gidmap, **self._driver_tuning())
            with self._locked(layers="w", containers="w"):
                ls = self.layer_store
                parent_layer = self._check_new_layer(id, parent_id, names)
                layer = ls.create(id, parent_layer, names, mount_label, writeable, options, uidmap, gidmap,
                                  staged=(staging, extracted))
                return _copy(layer), extracted.size
        finally:
            self.driver.discard_staged(staging)
            layerdata.remove_quietly(tarsplit_tmp)

    def _check_new_layer(self, id: str | None, parent: str | None, names: list[str]) -> Layer | None:
        """The parent of a layer about to be created, after upstream's checks (locks held)."""
        from .errors import DuplicateID

        ls = self.layer_store
        if id and id in ls.by_id:
            raise DuplicateID()
        ls.check_names_free(names)
        if not parent:
            return None
        parent_layer = ls.get(parent)
        if parent_layer is None:
            raise LayerUnknown()
        if self.container_store.by_layer.get(parent_layer.id) is not None:
            raise ParentIsContainer(f"layer {parent_layer.id}")
        return parent_layer

    def apply_diff(self, ref: str, diff: BinaryIO) -> int:
        """Apply a (possibly compressed) tar to an existing layer; returns the bytes written.

        An empty layer (the usual create-layer + applydiff case) is filled
        through a staging directory,
        without holding the layers lock while extracting.  Otherwise the files
        change in place under the lock, as upstream does.  The record changes
        only when the whole diff applied.
        """
        from . import layerdata
        from .drivers.base import CreateOptions

        with self._locked(layers="r"):
            layer = self.layer_store.require(ref)
            staged = layer.mount_count == 0 and not self.driver.has_own_content(layer.id)
        if staged:
            staging = self.driver.stage(layer.parent or None, CreateOptions())
            tarsplit_tmp = layerdata.temp_tarsplit_path(self.layer_store.dir)
            try:
                extracted = layerdata.extract(
                    diff, staging.root, whiteouts=staging.whiteouts, skip_root=staging.skip_root,
                    tarsplit_path=tarsplit_tmp, uidmap=layer.uidmap, gidmap=layer.gidmap,
                    **self._driver_tuning())
                with self._locked(layers="w"):
                    ls = self.layer_store
                    current = ls.by_id.get(layer.id)
                    if current is None:
                        raise LayerUnknown()
                    if current.mount_count == 0 and not self.driver.has_own_content(layer.id):
                        self.driver.replace_content(layer.id, staging)
                        ls.record_applied_diff(current, extracted)
                        return extracted.size
                # Someone wrote into the layer meanwhile: apply again, in place.
                diff = _rewound(diff)
            finally:
                self.driver.discard_staged(staging)
                layerdata.remove_quietly(tarsplit_tmp)
        with self._locked(layers="w"):
            ls = self.layer_store
            layer = ls.require(ref)
            tarsplit_tmp = layerdata.temp_tarsplit_path(ls.dir)
            try:
                extracted = layerdata.extract(
                    diff, self.driver.layer_dir(layer.id),
                    whiteouts="overlay" if self.driver.capabilities.on_disk_whiteouts else "naive",
                    skip_root=self.driver.capabilities.on_disk_whiteouts, tarsplit_path=tarsplit_tmp,
                    uidmap=layer.uidmap, gidmap=layer.gidmap, **self._driver_tuning())
                ls.record_applied_diff(layer, extracted)
            finally:
                layerdata.remove_quietly(tarsplit_tmp)
            return extracted.size

    def _content_dirs(self, layer: Layer) -> list[str]:
        return [self.driver.layer_dir(layer.id), *self.driver.lower_dirs(layer.id)]

    def diff(self, to: str, from_: str | None = None, out: BinaryIO | None = None,
             compression: int | None = None) -> None:
        """Write the changes of layer *to* against *from_* (default: its parent) as a tar to *out*.

        Against the parent, a layer with tar-split data gives back exactly the
        tar that was applied (same digest); otherwise a tar is generated.
        *compression* defaults to the compression the diff arrived with.
        """
        from . import layerdata
        from .archive import export

        assert out is not None, "diff needs an output stream"
        with self._locked(graph=True, layers="w"):
            ls = self.layer_store
            layer = ls.require(to)
            if compression is None:
                compression = layer.compression
            base = ls.require(from_) if from_ else (ls.by_id.get(layer.parent) if layer.parent else None)
            tarsplit = ls.tar_split_path(layer.id)
            if (base is None or base.id == layer.parent) and os.path.exists(tarsplit):
                layerdata.write_stream(layerdata.reassembled(tarsplit, self._content_dirs(layer)), out,
                                       compression)
                return
            native = self.driver.capabilities.on_disk_whiteouts and (base is None or base.id == layer.parent)
            if native:
                lowers = self.driver.lower_dirs(layer.id)
                layerdata.generated_diff(
                    lambda w: export.overlay_diff(self.driver.layer_dir(layer.id), lowers, w,
                                                  layer.uidmap, layer.gidmap), out, compression)
            else:
                with self._mounted_pair(layer, base) as (new_root, old_root):
                    layerdata.generated_diff(
                        lambda w: export.naive_diff(new_root, old_root, w, layer.uidmap, layer.gidmap),
                        out, compression)

    @contextmanager
    def _mounted_pair(self, layer: Layer, base: Layer | None) -> Iterator[tuple[str, str | None]]:
        """Full trees of *layer* and *base* for the naive comparison (mounting when needed)."""
        ls = self.layer_store
        if not self.driver.capabilities.copy_on_write:
            yield self.driver.layer_dir(layer.id), self.driver.layer_dir(base.id) if base else None
            return
        ro = _mount_options(options=["ro"])
        new_root = ls.mount(layer, ro)
        try:
            if base is None:
                yield new_root, None
                return
            old_root = ls.mount(base, ro)
            try:
                yield new_root, old_root
            finally:
                ls.unmount(base, False)
        finally:
            ls.unmount(layer, False)

    def changes(self, to: str, from_: str | None = None) -> list[Change]:
        """What layer *to* adds, modifies and deletes against *from_* (default: its parent)."""
        from .archive import changes

        with self._locked(graph=True, layers="w"):
            ls = self.layer_store
            layer = ls.require(to)
            base = ls.require(from_) if from_ else (ls.by_id.get(layer.parent) if layer.parent else None)
            if self.driver.capabilities.on_disk_whiteouts and (base is None or base.id == layer.parent):
                return changes.overlay_changes(self.driver.layer_dir(layer.id),
                                               self.driver.lower_dirs(layer.id))
            with self._mounted_pair(layer, base) as (new_root, old_root):
                return changes.naive_changes(new_root, old_root)

    def diff_size(self, to: str, from_: str | None = None) -> int:
        """Bytes of file data layer *to* adds against *from_* (default: its parent)."""
        from .archive import changes

        with self._locked(graph=True, layers="w"):
            ls = self.layer_store
            layer = ls.require(to)
            base = ls.require(from_) if from_ else (ls.by_id.get(layer.parent) if layer.parent else None)
            if self.driver.capabilities.on_disk_whiteouts and (base is None or base.id == layer.parent):
                return changes.overlay_diff_size(self.driver.layer_dir(layer.id))
            with self._mounted_pair(layer, base) as (new_root, old_root):
                return changes.naive_diff_size(new_root, old_root)

    def layer_parent_owners(self, ref: str) -> tuple[list[int], list[int]]:
        with self._locked(layers="r"):
            ls = self.layer_store
            return ls.parent_owners(ls.require(ref))

    def list_layer_big_data(self, ref: str) -> list[str]:
        return list(self.layer(ref).big_data_names)

    def layer_big_data(self, ref: str, key: str) -> bytes:
        with self._locked(layers="r"):
            ls = self.layer_store
            return ls.get_bigdata(ls.require(ref), key)

    def set_layer_big_data(self, ref: str, key: str, data: bytes) -> None:
        with self._locked(layers="w"):
            ls = self.layer_store
            ls.set_bigdata(ls.require(ref), key, data)

    # --------------------------------------------------------------- images

    def create_image(self, id: str | None = None, names: Sequence[str] = (), top_layer: str = "",
                     metadata: str = "", options: ImageOptions | None = None) -> Image:
        if options is None:
            from .creation import ImageOptions

            options = ImageOptions()
        with self._locked(layers="r", images="w"):
            top_id = ""
            if top_layer:
                layer = self.layer_store.get(top_layer)
                if layer is None:
                    raise LayerUnknown()
                top_id = layer.id
            return _copy(self.image_store_records.create(id, list(names), top_id, metadata, options))

    def image(self, ref: str) -> Image:
        with self._locked(images="r"):
            return _copy(self.image_store_records.require(ref))

    def images(self) -> list[Image]:
        with self._locked(images="r"):
            return _copies(self.image_store_records.records)

    def images_by_digest(self, digest: str) -> list[Image]:
        from .records import validate_digest

        validate_digest(digest)
        with self._locked(images="r"):
            return _copies(self.image_store_records.by_digest.get(digest, []))

    def images_by_top_layer(self, ref: str) -> list[Image]:
        with self._locked(layers="r", images="r"):
            layer = self.layer_store.require(ref)
            return _copies(self.image_store_records.by_top_layer(layer.id))

    def delete_image(self, ref: str, commit: bool = True) -> list[str]:
        """Delete an image and every layer only it used; returns those layer IDs, top first."""
        with self._locked(layers="w", images="w", containers="w"):
            images = self.image_store_records
            image = images.get(ref)
            if image is None:
                raise NotAnImage()
            # Upstream maps image -> container over containers.json, so the last user wins.
            for container in reversed(self.container_store.records):
                if container.image == image.id:
                    raise ImageUsedByContainer(f"image used by {container.id}")
            doomed = self._layers_only_used_by(image)
            if commit:
                images.delete(image)
                ls = self.layer_store
                for layer_id in doomed:
                    layer = ls.by_id.get(layer_id)
                    if layer is not None:
                        ls.delete(layer)
            return doomed

    def _layers_only_used_by(self, image: Image) -> list[str]:
        ls = self.layer_store
        others_tops: set[str] = set()
        for other in self.image_store_records.records:
            if other.id != image.id:
                others_tops.add(other.top_layer)
                others_tops.update(other.mapped_top_layers)
        container_layers = set(self.container_store.by_layer)
        children: dict[str, set[str]] = {}
        for layer in ls.records:
            if layer.parent:
                children.setdefault(layer.parent, set()).add(layer.id)
        doomed: list[str] = []

        def removable(layer_id: str) -> bool:
            return (layer_id in ls.by_id and layer_id not in container_layers
                    and layer_id not in others_tops
                    and children.get(layer_id, set()) <= set(doomed))

        for mapped in image.mapped_top_layers:
            if removable(mapped):
                doomed.append(mapped)
        layer_id = image.top_layer
        while layer_id and removable(layer_id):
            doomed.append(layer_id)
            layer_id = ls.by_id[layer_id].parent
        return doomed

    def image_size(self, ref: str) -> int:
        with self._locked(layers="r", images="r"):
            image = self.image_store_records.require(ref)
            ls = self.layer_store
            seen: set[str] = set()
            total = 0
            for top in [image.top_layer, *image.mapped_top_layers]:
                layer_id = top
                while layer_id and layer_id not in seen:
                    layer = ls.by_id.get(layer_id)
                    if layer is None:
                        raise LayerUnknown(f"locating layer with ID {goquote(layer_id)}")
                    seen.add(layer_id)
                    if (layer.uncompressed_digest or layer.toc_digest) and layer.uncompressed_size != -1:
                        total += layer.uncompressed_size
                    else:
                        total += self.driver.diff_size(layer.id, layer.parent or None)
                    layer_id = layer.parent
            for key in image.big_data_names:
                total += self.image_store_records.bigdata_size(image, key)
            return total

    def list_image_big_data(self, ref: str) -> list[str]:
        return list(self.image(ref).big_data_names)

    def image_big_data(self, ref: str, key: str) -> bytes:
        with self._locked(images="r"):
            images = self.image_store_records
            return images.get_bigdata(images.require(ref), key)

    def image_big_data_size(self, ref: str, key: str) -> int:
        with self._locked(images="r"):
            images = self.image_store_records
            return images.bigdata_size(images.require(ref), key)

    def image_big_data_digest(self, ref: str, key: str) -> str:
        with self._locked(images="r"):
            images = self.image_store_records
            return images.bigdata_digest(images.require(ref), key)

    def set_image_big_data(self, ref: str, key: str, data: bytes,
                           digest_manifest: Callable[[bytes], str] | None = None) -> None:
        with self._locked(images="w"):
            images = self.image_store_records
            images.set_bigdata(images.require(ref), key, data, digest_manifest)

    def _userdata_dir(self, root: str, kind: str, name: str) -> str:
        path = os.path.join(root, f"{self.graph_driver_name}-{kind}", name, "userdata")
        atomicio.ensure_dir(path)
        return path

    def image_directory(self, ref: str) -> str:
        """``G/<drv>-images/<id>/userdata`` (created); an unknown ref is used as given, as upstream."""
        return self._userdata_dir(self.graph_root, "images", self._image_id_or_ref(ref))

    def image_run_directory(self, ref: str) -> str:
        return self._userdata_dir(self.run_root, "images", self._image_id_or_ref(ref))

    def _image_id_or_ref(self, ref: str) -> str:
        with self._locked(images="r"):
            image = self.image_store_records.get(ref)
            return image.id if image is not None else ref

    def mount_image(self, ref: str, options: Sequence[str] = (), mount_label: str = "") -> str:
        if "rw" in options:
            raise plain('"rw" option not supported')
        with self._locked(graph=True, layers="w", images="r"):
            image = self.image_store_records.require(ref)
            layer = self.layer_store.require(image.top_layer)
            opts = [o for o in options if o != "ro"] + ["ro"]
            return self.layer_store.mount(layer, _mount_options(mount_label=mount_label, options=opts))

    def unmount_image(self, ref: str, force: bool = False) -> bool:
        with self._locked(graph=True, layers="w", images="r"):
            image = self.image_store_records.require(ref)
            layer = self.layer_store.require(image.top_layer)
            return self.layer_store.unmount(layer, force)

    # ----------------------------------------------------------- containers

    def create_container(self, id: str | None = None, names: Sequence[str] = (), image: str = "",
                         layer: str = "", metadata: str = "",
                         options: ContainerOptions | None = None) -> Container:
        if options is None:
            from .creation import ContainerOptions

            options = ContainerOptions()
        with self._locked(layers="w", images="w", containers="w"):
            cs = self.container_store
            top = ""
            image_id = ""
            if image:
                img = self.image_store_records.get(image)
                if img is None:
                    raise ImageUnknown(f"locating image with ID {goquote(image)}")
                image_id, top = img.id, img.top_layer
            container_id = id or generate_id(lambda c: c in cs.by_id or c in self.layer_store.by_id)
            if container_id in cs.by_id:
                from .errors import DuplicateID

                raise DuplicateID()
            all_names = list(names)
            cs.check_names_free(all_names)
            volatile = options.volatile or self.transient_store
            uidmap, gidmap = self._resolve_maps(options.id_mapping, self.uidmap, self.gidmap)
            rw_layer = self._create_layer_locked(
                layer or None, top or None, [], options.mount_label, True,
                _layer_options(id_mapping=options.id_mapping, volatile=volatile),
                storage_opt=options.storage_opt)
            flags: dict[str, Any] = {"MountLabel": options.mount_label, "ProcessLabel": options.process_label}
            flags.update(options.flags)
            if options.mount_opts:
                flags["MountOpts"] = list(options.mount_opts)
            if volatile:
                flags["Volatile"] = True
            try:
                container = cs.create(container_id, all_names, image_id, rw_layer.id,
                                      metadata or options.metadata, flags, uidmap, gidmap, volatile,
                                      options.big_data)
            except BaseException:
                self.layer_store.delete(rw_layer)
                raise
            return _copy(container)

    def container(self, ref: str) -> Container:
        with self._locked(containers="r"):
            return _copy(self.container_store.require(ref))

    def containers(self) -> list[Container]:
        with self._locked(containers="r"):
            return _copies(self.container_store.records)

    def container_by_layer(self, ref: str) -> Container:
        with self._locked(layers="r", containers="r"):
            layer = self.layer_store.require(ref)
            container = self.container_store.by_layer.get(layer.id)
            if container is None:
                raise ContainerUnknown()
            return _copy(container)

    def delete_container(self, ref: str) -> None:
        with self._locked(layers="w", images="w", containers="w"):
            cs = self.container_store
            container = cs.get(ref)
            if container is None:
                raise NotAContainer()
            self._delete_container_locked(container)

    def _delete_container_locked(self, container: Container) -> None:
        # The record goes first: a crash in between leaves an unreferenced layer
        # (which check and repair clean up), never a container without its layer.
        # Upstream deletes in the other order.
        layer = self.layer_store.by_id.get(container.layer)
        self.container_store.delete(container)
        if layer is not None:
            self._delete_layer_locked(layer)

    def container_size(self, ref: str) -> int:
        with self._locked(layers="r", containers="r"):
            cs = self.container_store
            container = cs.require(ref)
            layer = self.layer_store.by_id.get(container.layer)
            if layer is None:
                raise LayerUnknown(f"locating layer with ID {goquote(container.layer)}")
            total = self.driver.diff_size(layer.id, layer.parent or None)
            for key in container.big_data_names:
                size = container.big_data_sizes.get(key)
                if size is None:
                    raise SizeUnknown()
                total += size
            for root in (cs.bigdata_dir(container.id), os.path.join(cs.run_dir, container.id)):
                total += _tree_size(os.path.join(root, "userdata"))
            return total

    def container_directory(self, ref: str) -> str:
        return self._userdata_dir(self.graph_root, "containers", self.container(ref).id)

    def container_run_directory(self, ref: str) -> str:
        return self._userdata_dir(self.run_root, "containers", self.container(ref).id)

    def list_container_big_data(self, ref: str) -> list[str]:
        return list(self.container(ref).big_data_names)

    def container_big_data(self, ref: str, key: str) -> bytes:
        with self._locked(containers="r"):
            cs = self.container_store
            return cs.get_bigdata(cs.require(ref), key)

    def container_big_data_size(self, ref: str, key: str) -> int:
        with self._locked(containers="w"):
            cs = self.container_store
            return cs.bigdata_size(cs.require(ref), key)

    def container_big_data_digest(self, ref: str, key: str) -> str:
        with self._locked(containers="w"):
            cs = self.container_store
            return cs.bigdata_digest(cs.require(ref), key)

    def set_container_big_data(self, ref: str, key: str, data: bytes) -> None:
        with self._locked(containers="w"):
            cs = self.container_store
            cs.set_bigdata(cs.require(ref), key, data)

    def container_parent_owners(self, ref: str) -> tuple[list[int], list[int]]:
        with self._locked(layers="r", containers="r"):
            container = self.container_store.require(ref)
            ls = self.layer_store
            return ls.parent_owners(ls.require(container.layer))

    # ----------------------------------------------------------- any object

    def _find(self, ref: str) -> Layer | Image | Container | None:
        """Layers, then images, then containers (caller holds read locks on all)."""
        return (self.layer_store.get(ref) or self.image_store_records.get(ref)
                or self.container_store.get(ref))

    def exists(self, ref: str) -> bool:
        with self._locked(layers="r", images="r", containers="r"):
            return self._find(ref) is not None

    def lookup(self, ref: str) -> str:
        with self._locked(layers="r", images="r", containers="r"):
            found = self._find(ref)
            if found is None:
                raise LayerUnknown()
            return found.id

    def metadata(self, ref: str) -> str:
        with self._locked(layers="r", images="r", containers="r"):
            found = self._find(ref)
            if found is None:
                raise NotAnID()
            return found.metadata

    def set_metadata(self, ref: str, value: str) -> None:
        with self._locked(layers="w", images="w", containers="w"):
            for store in (self.layer_store, self.image_store_records, self.container_store):
                record = store.get(ref)
                if record is not None:
                    store.set_metadata(record, value)  # type: ignore[arg-type]
                    return
            raise NotAnID()

    def names(self, ref: str) -> list[str]:
        with self._locked(layers="r", images="r", containers="r"):
            found = self._find(ref)
            if found is None:
                raise LayerUnknown()
            return list(found.names)

    def set_names(self, ref: str, names: Sequence[str]) -> None:
        self._update_names(ref, "set", list(names))

    def add_names(self, ref: str, names: Sequence[str]) -> None:
        self._update_names(ref, "add", list(names))

    def remove_names(self, ref: str, names: Sequence[str]) -> None:
        self._update_names(ref, "remove", list(names))

    def _update_names(self, ref: str, op: str, names: list[str]) -> None:
        # One kind at a time, each under its own write lock, as upstream does.
        for kind in ("layers", "images", "containers"):
            with self._locked(**{kind: "w"}):  # type: ignore[arg-type]
                store: Any = {"layers": self.layer_store, "images": self.image_store_records,
                              "containers": self.container_store}[kind]
                record = store.get(ref)
                if record is None:
                    continue
                getattr(store, f"{op}_names")(record, names)
                if kind == "images":
                    store.record_names_history(record)
                store.save(None if kind == "images" else {store.location_of(record)})
                return
        raise LayerUnknown()

    def delete(self, ref: str) -> None:
        """Delete a container, image record or layer with no safety checks."""
        with self._locked(layers="w", images="w", containers="w"):
            ls, images, cs = self.layer_store, self.image_store_records, self.container_store
            container = cs.get(ref)
            if container is not None:
                if container.layer not in ls.by_id:
                    raise NotALayer()
                self._delete_container_locked(container)
                return
            image = images.get(ref)
            if image is not None:
                images.delete(image)
                return
            layer = ls.get(ref)
            if layer is not None:
                self._delete_layer_locked(layer)
                return
            raise LayerUnknown()

    def wipe(self) -> None:
        """Delete every container, image and layer, then leftover driver layers."""
        with self._locked(layers="w", images="w", containers="w"):
            cs, images, ls = self.container_store, self.image_store_records, self.layer_store
            for container in list(cs.records):
                self._delete_container_locked(container)
            for image in list(images.records):
                images.delete(image)
            for layer in reversed(list(ls.records)):
                ls.delete(layer)
            for leftover in self.driver.list_layers():
                self.driver.remove(leftover)

    # --------------------------------------------------------------- mounts

    def _layer_for_mount(self, ref: str) -> tuple[Layer, Container | None]:
        ls = self.layer_store
        container = self.container_store.get(ref)
        if container is not None:
            layer = ls.by_id.get(container.layer)
            if layer is None:
                raise LayerUnknown(f"locating layer with ID {goquote(container.layer)}")
            return layer, container
        layer = ls.get(ref)
        if layer is None:
            raise LayerUnknown()
        return layer, None

    def mount(self, ref: str, mount_label: str = "", options: Sequence[str] = ()) -> str:
        """Mount a layer or container's layer and return the path (counts nest)."""
        with self._locked(graph=True, layers="w", containers="r"):
            layer, container = self._layer_for_mount(ref)
            if layer.read_only:
                raise StoreIsReadOnly("mounting read/only store images is not allowed")
            label = mount_label or layer.mount_label
            if container is None:
                opts = _mount_options(mount_label=label, options=list(options))
            else:
                opts = _mount_options(
                    mount_label=label,
                    options=[*options, *(str(o) for o in container.flags.get("MountOpts") or ())],
                    uidmap=container.uidmap, gidmap=container.gidmap,
                    volatile=container.volatile and not self.options.disable_volatile)
            return self.layer_store.mount(layer, opts)

    def unmount(self, ref: str, force: bool = False) -> bool:
        """Drop one mount of a layer, container or mount path; returns whether still mounted."""
        with self._locked(graph=True, layers="w", containers="r"):
            ls = self.layer_store
            try:
                layer, _ = self._layer_for_mount(ref)
            except LayerUnknown:
                by_path = ls.by_mount_path(ref) if os.path.isabs(ref) else None
                if by_path is None:
                    raise
                layer = by_path
            return ls.unmount(layer, force)

    def mounted(self, ref: str) -> int:
        with self._locked(layers="r", containers="r"):
            layer, _ = self._layer_for_mount(ref)
            return self.layer_store.mounted_count(layer)

    def shutdown(self, force: bool = False) -> list[str]:
        """Unmount (with *force*) and release the driver; refuses while layers are mounted.

        1.43's forced shutdown loops forever (it re-reads a mount count that its
        unmount never lowers); HEAD means "unmount every layer, then shut down",
        which is what this does: each layer's count is driven to zero once.
        """
        with self._locked(graph=True, layers="w"):
            ls = self.layer_store
            mounted = [layer for layer in ls.records if layer.mount_count > 0]
            if mounted and not force:
                raise LayerMounted("a layer is mounted")
            if mounted:
                with ls.mounts_writing():
                    for layer in mounted:
                        while layer.mount_count > 0:
                            ls._unmount_locked(layer, force=True)
                    ls._write_mounts_locked()
            self.graph_lock.record_write()
            self.driver.cleanup()
            return [layer.id for layer in mounted]

    # ------------------------------------------------------------------ gc

    def garbage_collect(self) -> None:
        """Remove driver layers, tar-split files and data dirs that have no record."""
        import re

        hex64 = re.compile(r"^[0-9a-f]{64}$")
        with self._locked(layers="w", images="w", containers="w"):
            ls, images, cs = self.layer_store, self.image_store_records, self.container_store
            self.driver.clean_stale_staging()
            for layer_id in self.driver.list_layers():
                if layer_id not in ls.by_id:
                    self.driver.remove(layer_id)
            for entry in _listdir(ls.dir):
                if entry.endswith(".tar-split.gz") and entry[:-len(".tar-split.gz")] not in ls.by_id:
                    os.unlink(os.path.join(ls.dir, entry))
                elif hex64.match(entry) and entry not in ls.by_id:
                    remove_tree(os.path.join(ls.dir, entry))
            for directory, known in ((images.dir, images.by_id), (cs.dir, cs.by_id), (cs.run_dir, cs.by_id),
                                     (os.path.join(self.run_root, f"{self.graph_driver_name}-images"), images.by_id)):
                for entry in _listdir(directory):
                    if hex64.match(entry) and entry not in known:
                        remove_tree(os.path.join(directory, entry))

    # ---------------------------------------------------------------- check

    def check(self, options: CheckOptions | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> CheckReport:
        """Report damaged layers, images and containers (see :func:`containers_storage.check.check`).

        *on_progress* is called with (layers checked, layers in all) after each layer.
        """
        from .check import check

        return check(self, options, on_progress)

    def repair(self, report: CheckReport, remove_containers: bool = False) -> list[StorageError]:
        """Remove what *report* found damaged and what depends on it; returns the failures."""
        from .check import repair

        return repair(self, report, remove_containers)


def _rewound(stream: BinaryIO) -> BinaryIO:
    """*stream* at its start again, for a second pass (only seekable inputs allow one)."""
    try:
        stream.seek(0)
    except (AttributeError, OSError) as exc:
        raise plain("the layer changed while its diff was being applied and the input cannot be re-read"
                    ) from exc
    return stream


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _layer_options(**kwargs: Any) -> LayerOptions:
    from .creation import LayerOptions

    return LayerOptions(**kwargs)


def open_store(options: StoreOptions | None = None) -> Store:
    """Shorthand for :meth:`Store.open`."""
    return Store.open(options)


def _mount_options(**kwargs: Any) -> MountOptions:
    from .drivers.base import MountOptions

    return MountOptions(**kwargs)
