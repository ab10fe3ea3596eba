"""Image commands: images, image, images-by-digest, create-image, delete-image, image data and dirs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...errors import StorageError
from ..context import Action, Context
from ..flags import bool_flag, list_flag, string_flag
from . import JSON, read_metadata, sorted_map

if TYPE_CHECKING:
    from ...records import Image

QUIET = bool_flag(("-quiet", "q"), "quiet", "Only print IDs")


def _image_lines(images: Sequence[Image], quiet: bool) -> str:
    lines: list[str] = []
    for image in images:
        lines.append(f"{image.id}\n")
        if quiet:
            continue
        lines.extend(f"\tname: {name}\n" for name in image.names)
        lines.extend(f"\tdigest: {digest}\n" for digest in image.digests)
        lines.extend(f"\tdata: {name}\n" for name in image.big_data_names)
    return "".join(lines)


def _images(ctx: Context, args: list[str]) -> int:
    images = ctx.store.images()
    if ctx.json:
        ctx.emit_records(images)
    else:
        ctx.out(_image_lines(images, ctx.flag("quiet")))
    return 0


images = Action(_images, (JSON, QUIET), driver=False)


def _images_by_digest(ctx: Context, args: list[str]) -> int:
    from ...records import validate_digest

    found: list[Image] = []
    for arg in args:
        try:
            validate_digest(arg)
        except StorageError as exc:
            ctx.err(f"{arg}: {exc}\n")
            return 1
        found.extend(ctx.store.images_by_digest(arg))
    if ctx.json:
        ctx.emit_records(found)
    else:
        ctx.out(_image_lines(found, ctx.flag("quiet")))
    return 0


images_by_digest = Action(_images_by_digest, (JSON, QUIET), driver=False)


def _image(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    matched: list[Image] = []
    for arg in args:
        try:
            matched.append(store.image(arg))
        except StorageError:
            pass
    if ctx.json:
        ctx.emit_records(matched)
    else:
        for image in matched:
            lines = [f"ID: {image.id}\n"]
            lines.extend(f"Name: {name}\n" for name in image.names)
            lines.append(f"Top Layer: {image.top_layer}\n")
            lines.extend(f"Top Layer: {layer_id}\n" for layer_id in image.mapped_top_layers)
            lines.extend(f"Digest: {digest}\n" for digest in image.digests)
            lines.extend(f"Data: {name}\n" for name in image.big_data_names)
            try:
                lines.append(f"Size: {store.image_size(image.id)}\n")
            except StorageError as exc:
                lines.append(f"Size unknown: {exc}\n")
            if image.read_only:
                lines.append("Read Only: true\n")
            ctx.out("".join(lines))
    return 0 if len(matched) == len(args) else 1


image = Action(_image, (JSON,))


def _create_image(ctx: Context, args: list[str]) -> int:
    from ...creation import ImageOptions

    metadata = read_metadata(ctx)
    new = ctx.store.create_image(
        id=ctx.text("id") or None,
        names=ctx.texts("names"),
        top_layer=args[0] if args else "",
        metadata=metadata,
        options=ImageOptions(digest=ctx.text("digest")),
    )
    if ctx.json:
        ctx.emit_record(new)
    else:
        ctx.out(f"{new.id}\n" + "".join(f"\t{name}\n" for name in new.names))
    return 0


create_image = Action(_create_image, (
    list_flag(("-name", "n"), "names", "Image name"),
    string_flag(("-id", "i"), "id", "Image ID"),
    string_flag(("-digest", "d"), "digest", "Image Digest"),
    string_flag(("-metadata", "m"), "metadata", "Metadata"),
    string_flag(("-metadata-file", "f"), "metadata_file", "Metadata File"),
    JSON,
))


def _delete_image(ctx: Context, args: list[str]) -> int:
    results: dict[str, dict[str, object]] = {}
    failed = False
    for arg in args:
        record: dict[str, object] = {}
        try:
            removed = ctx.store.delete_image(arg, commit=not ctx.flag("test"))
            if removed:
                record["deleted-layers"] = list(removed)
        except StorageError as exc:
            record["error"] = str(exc)
            failed = True
        results[arg] = record
    if ctx.json:
        ctx.emit_json(sorted_map(dict(results)))
    else:
        lines: list[str] = []
        for what, record in results.items():
            if "error" in record:
                lines.append(f"{what}: {record['error']}\n")
            else:
                layers = record.get("deleted-layers", [])
                assert isinstance(layers, list)
                lines.extend(f"{what}: {layer_id}\n" for layer_id in layers)
        ctx.err("".join(lines))
    return 1 if failed else 0


delete_image = Action(_delete_image, (
    bool_flag(("-test", "t"), "test", "Only test removal"),
    JSON,
))


# -- image big data


def _list_image_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    names = store.list_image_big_data(store.image(args[0]).id)
    if ctx.json:
        ctx.emit_json(list(names) or None)
    else:
        ctx.out("".join(f"{name}\n" for name in names))
    return 0


list_image_data = Action(_list_image_data, (JSON,))


def _get_image_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ident = store.image(args[0]).id
    path = ctx.text("file")
    if path:
        with open(path, "wb") as f:  # created before the lookup, as upstream does
            f.write(store.image_big_data(ident, args[1]))
    else:
        ctx.out_bytes(store.image_big_data(ident, args[1]))
    return 0


get_image_data = Action(_get_image_data, (string_flag(("-file", "f"), "file", "Write data to file"),))


def _get_image_data_size(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ctx.out(f"{store.image_big_data_size(store.image(args[0]).id, args[1])}\n")
    return 0


get_image_data_size = Action(_get_image_data_size)


def _get_image_data_digest(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ctx.out(f"{store.image_big_data_digest(store.image(args[0]).id, args[1])}\n")
    return 0


get_image_data_digest = Action(_get_image_data_digest)


def _set_image_data(ctx: Context, args: list[str]) -> int:
    from ...records import sha256_digest

    store = ctx.store
    ident = store.image(args[0]).id
    # Upstream's CLI digests manifests as plain bytes too ("with sometimes wrong digest").
    store.set_image_big_data(ident, args[1], ctx.read_input(ctx.text("file")), digest_manifest=sha256_digest)
    return 0


set_image_data = Action(_set_image_data, (string_flag(("-file", "f"), "file", "Read data from file"),))


def _get_image_dir(ctx: Context, args: list[str]) -> int:
    ctx.out(f"{ctx.store.image_directory(args[0])}\n")
    return 0


get_image_dir = Action(_get_image_dir)


def _get_image_run_dir(ctx: Context, args: list[str]) -> int:
    ctx.out(f"{ctx.store.image_run_directory(args[0])}\n")
    return 0


get_image_run_dir = Action(_get_image_run_dir)
