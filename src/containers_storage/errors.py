"""The error tree, mirroring upstream's sentinel errors.

Every class carries upstream's message text as ``sentinel``; ``str()`` of an
instance is ``"<context>: <sentinel>"`` when context is given, so CLI output
matches what the Go tools print.  Exit codes are decided only by the CLI.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by this package."""

    sentinel: str = "storage error"

    def __init__(self, context: str = "", *, sentinel: str | None = None) -> None:
        if sentinel is not None:
            self.sentinel = sentinel
        self.context = context
        super().__init__(f"{context}: {self.sentinel}" if context else self.sentinel)


class ContainerUnknown(StorageError, LookupError):
    sentinel = "container not known"


class DigestUnknown(StorageError, LookupError):
    sentinel = "could not compute digest of item"


class DuplicateID(StorageError, FileExistsError):
    sentinel = "that ID is already in use"


class DuplicateImageNames(StorageError):
    sentinel = "read-only image store assigns the same name to multiple images"


class DuplicateLayerNames(StorageError):
    sentinel = "read-only layer store assigns the same name to multiple layers"


class DuplicateName(StorageError, FileExistsError):
    sentinel = "that name is already in use"


class ImageUnknown(StorageError, LookupError):
    sentinel = "image not known"


class ImageUsedByContainer(StorageError):
    sentinel = "image is in use by a container"


class IncompleteOptions(StorageError, ValueError):
    sentinel = "missing necessary StoreOptions"


class InvalidBigDataName(StorageError, ValueError):
    sentinel = "not a valid name for a big data item"


class LayerHasChildren(StorageError):
    sentinel = "layer has children"


class LayerNotMounted(StorageError):
    sentinel = "layer is not mounted"


class LayerUnknown(StorageError, LookupError):
    sentinel = "layer not known"


class LayerUsedByContainer(StorageError):
    sentinel = "layer is in use by a container"


class LayerUsedByImage(StorageError):
    sentinel = "layer is in use by an image"


class LoadError(StorageError):
    sentinel = "error loading storage metadata"


class NotAContainer(StorageError, LookupError):
    sentinel = "identifier is not a container"


class NotALayer(StorageError, LookupError):
    sentinel = "identifier is not a layer"


class NotAnID(StorageError, LookupError):
    sentinel = "identifier is not a layer, image, or container"


class NotAnImage(StorageError, LookupError):
    sentinel = "identifier is not an image"


class ParentIsContainer(StorageError):
    sentinel = "would-be parent layer is a container"


class ParentUnknown(StorageError, LookupError):
    sentinel = "parent of layer not known"


class SizeUnknown(StorageError, LookupError):
    sentinel = "size is not known"


class StoreIsReadOnly(StorageError, PermissionError):
    sentinel = "called a write method on a read-only store"


class NotSupported(StorageError):
    sentinel = "not supported"


class InvalidMappings(StorageError, ValueError):
    sentinel = "invalid mappings specified"


class NoAvailableIDs(StorageError):
    sentinel = "not enough unused IDs in user namespace"


class LayerUnaccounted(StorageError):
    sentinel = "layer in lower level storage driver not accounted for"


class LayerUnreferenced(StorageError):
    sentinel = "layer not referenced by any images or containers"


class LayerIncorrectContentDigest(StorageError):
    sentinel = "layer content incorrect digest"


class LayerIncorrectContentSize(StorageError):
    sentinel = "layer content incorrect size"


class LayerContentModified(StorageError):
    sentinel = "layer content modified"


class LayerDataMissing(StorageError):
    sentinel = "layer data item is missing"


class LayerMissing(StorageError):
    sentinel = "layer is missing"


class ImageLayerMissing(StorageError):
    sentinel = "image layer is missing"


class ImageDataMissing(StorageError):
    sentinel = "image data item is missing"


class ImageDataIncorrectSize(StorageError):
    sentinel = "image data item has incorrect size"


class ContainerImageMissing(StorageError):
    sentinel = "image missing"


class ContainerDataMissing(StorageError):
    sentinel = "container data item is missing"


class ContainerDataIncorrectSize(StorageError):
    sentinel = "container data item has incorrect size"


# Errors that upstream produces by wrapping os errors or by plain fmt.Errorf;
# they still need a class so callers can catch them precisely.


class ItemNotFound(StorageError, FileNotFoundError):
    """A big-data item is missing (upstream wraps os.ErrNotExist)."""

    sentinel = "file does not exist"


class InvalidDigest(StorageError, ValueError):
    sentinel = "invalid checksum digest format"


class CorruptMetadata(StorageError):
    """A JSON metadata file cannot be parsed; it is never rewritten then."""

    sentinel = "invalid metadata file"


class DriverError(StorageError):
    """A storage driver failed (mount, create, unsupported option...)."""

    sentinel = "driver error"


class ConfigError(StorageError, ValueError):
    sentinel = "invalid storage configuration"


class NoSupportedDriver(StorageError):
    sentinel = "no supported storage backend found"


class MaxDepthExceeded(DriverError):
    sentinel = "max depth exceeded"


class LayerMounted(LayerUsedByContainer):
    """Shutdown refused: a layer is mounted (upstream wraps ErrLayerUsedByContainer)."""


class ArchiveError(StorageError, ValueError):
    """A layer's tar stream is broken, hostile or unsupported; ``context`` names the entry."""

    sentinel = "invalid archive"


class InvalidTarHeader(ArchiveError):
    sentinel = "invalid tar header"


class UnexpectedEOF(ArchiveError):
    sentinel = "unexpected EOF"


class DuplicatePath(ArchiveError):
    sentinel = "duplicates of file paths not supported"


class Breakout(ArchiveError):
    """An entry would be written (or a link would point) outside the layer."""

    sentinel = "breakout"


class UnsupportedEntry(ArchiveError):
    sentinel = "unhandled tar header type"


class CorruptCompressedStream(ArchiveError):
    sentinel = "corrupt compressed stream"


class TruncatedCompressedStream(UnexpectedEOF, CorruptCompressedStream):
    """A compressed stream ended inside a member; ``str()`` ends in ``unexpected EOF``."""


class UnsupportedCompression(StorageError, ValueError):
    sentinel = "unsupported compression format"


class ChecksumMismatch(StorageError):
    """Reassembling a layer's tar found a file whose contents changed (tar-split CRC-64)."""

    sentinel = "file integrity checksum failed"


def plain(message: str, cls: type[StorageError] = StorageError) -> StorageError:
    """An error whose whole text is *message* (upstream's fmt.Errorf without a sentinel)."""
    return cls(sentinel=message)


def goquote(text: str) -> str:
    """Go's ``%q`` for ordinary strings: double quotes, backslash escapes."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{out}"'
