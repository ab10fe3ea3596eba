"""Container commands: containers, container, create/delete-container, container data and dirs."""

from __future__ import annotations

from ...errors import StorageError
from ..context import Action, CommandError, Context, go_list
from ..flags import bool_flag, list_flag, string_flag
from . import ID_MAPPING, JSON, id_mapping, read_metadata
from .layers import parent_owners_json, report_deletions


def _containers(ctx: Context, args: list[str]) -> int:
    containers = ctx.store.containers()
    if ctx.json:
        ctx.emit_records(containers)
        return 0
    lines: list[str] = []
    for container in containers:
        lines.append(f"{container.id}\n")
        lines.extend(f"\tname: {name}\n" for name in container.names)
        lines.extend(f"\tdata: {name}\n" for name in container.big_data_names)
    ctx.out("".join(lines))
    return 0


containers = Action(_containers, (JSON,), driver=False)


def _container(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    images = store.images()
    matched = []
    for arg in args:
        try:
            matched.append(store.container(arg))
        except StorageError:
            pass
    if ctx.json:
        ctx.emit_records(matched)
    else:
        for container in matched:
            lines = [f"ID: {container.id}\n"]
            lines.extend(f"Name: {name}\n" for name in container.names)
            lines.append(f"Image: {container.image}\n")
            for image in images:
                if image.id == container.image:
                    lines.extend(f"Image name: {name}\n" for name in image.names)
                    break
            try:
                lines.append(f"Size: {store.container_size(container.id)}\n")
            except StorageError as exc:
                lines.append(f"Size unknown: {exc}\n")
            lines.append(f"Layer: {container.layer}\n")
            lines.extend(f"Data: {name}\n" for name in container.big_data_names)
            ctx.out("".join(lines))
    return 0 if len(matched) == len(args) else 1


container = Action(_container, (JSON,))


def _create_container(ctx: Context, args: list[str]) -> int:
    from ...creation import ContainerOptions

    metadata = read_metadata(ctx)
    mapping = id_mapping(ctx)
    options = ContainerOptions(volatile=ctx.flag("volatile"))
    if mapping is not None:
        options.id_mapping = mapping
    new = ctx.store.create_container(
        id=ctx.text("id") or None,
        names=ctx.texts("names"),
        image=args[0],
        layer="",
        metadata=metadata,
        options=options,
    )
    if ctx.json:
        ctx.emit_record(new)
    else:
        ctx.out(f"{new.id}\n" + "".join(f"\t{name}\n" for name in new.names))
    return 0


create_container = Action(_create_container, (
    list_flag(("-name", "n"), "names", "Container name"),
    string_flag(("-id", "i"), "id", "Container ID"),
    string_flag(("-metadata", "m"), "metadata", "Metadata"),
    string_flag(("-metadata-file", "f"), "metadata_file", "Metadata File"),
    JSON,
    *ID_MAPPING,
    bool_flag(("-volatile",), "volatile", "Mark as volatile"),
))


def _delete_container(ctx: Context, args: list[str]) -> int:
    results: dict[str, str] = {}
    for arg in args:
        try:
            ctx.store.delete_container(arg)
            results[arg] = ""
        except StorageError as exc:
            results[arg] = str(exc)
    return report_deletions(ctx, results)


delete_container = Action(_delete_container, (JSON,))


def _container_parent_owners(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    matched = []
    for arg in args:
        try:
            matched.append(store.container(arg))
        except StorageError:
            pass
    for found in matched:
        try:
            uids, gids = store.container_parent_owners(found.id)
        except StorageError as exc:
            raise CommandError(f"ContainerParentOwner: {exc}") from exc
        if ctx.json:
            ctx.emit_json(parent_owners_json(found.id, list(uids), list(gids)))
        else:
            ctx.out(f"ID: {found.id}\nUIDs: {go_list(list(uids))}\nGIDs: {go_list(list(gids))}\n")
    return 0 if len(matched) == len(args) else 1


container_parent_owners = Action(_container_parent_owners, (JSON,))


# -- container big data


def _list_container_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    names = store.list_container_big_data(store.container(args[0]).id)
    if ctx.json:
        ctx.emit_json(list(names) or None)
    else:
        ctx.out("".join(f"{name}\n" for name in names))
    return 0


list_container_data = Action(_list_container_data, (JSON,))


def _get_container_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ident = store.container(args[0]).id
    path = ctx.text("file")
    if path:
        with open(path, "wb") as f:  # created before the lookup, as upstream does
            f.write(store.container_big_data(ident, args[1]))
    else:
        ctx.out_bytes(store.container_big_data(ident, args[1]))
    return 0


get_container_data = Action(_get_container_data, (string_flag(("-file", "f"), "file", "Write data to file"),))


def _get_container_data_size(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ctx.out(f"{store.container_big_data_size(store.container(args[0]).id, args[1])}\n")
    return 0


get_container_data_size = Action(_get_container_data_size)


def _get_container_data_digest(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ctx.out(f"{store.container_big_data_digest(store.container(args[0]).id, args[1])}\n")
    return 0


get_container_data_digest = Action(_get_container_data_digest)


def _set_container_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ident = store.container(args[0]).id
    store.set_container_big_data(ident, args[1], ctx.read_input(ctx.text("file")))
    return 0


set_container_data = Action(_set_container_data, (string_flag(("-file", "f"), "file", "Read data from file"),))


def _get_container_dir(ctx: Context, args: list[str]) -> int:
    ctx.out(f"{ctx.store.container_directory(args[0])}\n")
    return 0


get_container_dir = Action(_get_container_dir)


def _get_container_run_dir(ctx: Context, args: list[str]) -> int:
    ctx.out(f"{ctx.store.container_run_directory(args[0])}\n")
    return 0


get_container_run_dir = Action(_get_container_run_dir)
