"""Commands taking any kind of object: exists, metadata, names, delete, mount/unmount/mounted."""

from __future__ import annotations

from ...errors import StorageError
from ..context import Action, CommandError, Context
from ..flags import bool_flag, list_flag, string_flag
from . import JSON, read_metadata, sorted_map
from .layers import report_deletions

# -- exists


def _exists(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    found: dict[str, bool] = {}
    missing = False
    for what in args:
        exists = store.exists(what)
        found[what] = exists
        try:
            if ctx.flag("container"):
                store.container(what)
            if ctx.flag("image"):
                store.image(what)
            if ctx.flag("layer"):
                store.layer(what)
        except StorageError:
            exists = False
        missing = missing or not exists
    if ctx.json:
        ctx.emit_json(sorted_map(dict(found)))
    elif not ctx.flag("quiet"):
        ctx.out("".join(f"{what}: {'true' if exists else 'false'}\n" for what, exists in found.items()))
    return 1 if missing else 0


exists = Action(_exists, (
    bool_flag(("-quiet", "q"), "quiet", "Don't print names"),
    bool_flag(("-layer", "l"), "layer", "Only succeed if the match is a layer"),
    bool_flag(("-image", "i"), "image", "Only succeed if the match is an image"),
    bool_flag(("-container", "c"), "container", "Only succeed if the match is a container"),
    JSON,
))


# -- metadata


def _metadata(ctx: Context, args: list[str]) -> int:
    values: dict[str, str] = {}
    missing = False
    for what in args:
        try:
            text = ctx.store.metadata(what)
        except StorageError:
            missing = True
            continue
        values[what] = text[:-1] if text.endswith("\n") else text
    if ctx.json:
        ctx.emit_json(sorted_map(dict(values)))
    elif ctx.flag("quiet"):
        ctx.out("".join(f"{values.get(what, '')}\n" for what in args))
    else:
        ctx.out("".join(f"{what}: {values.get(what, '')}\n" for what in args))
    return 1 if missing else 0


metadata = Action(_metadata, (
    bool_flag(("-quiet", "q"), "quiet", "Omit names and IDs"),
    JSON,
))


def _set_metadata(ctx: Context, args: list[str]) -> int:
    if not ctx.text("metadata") and not ctx.text("metadata_file"):
        raise CommandError("no new metadata provided")
    ctx.store.set_metadata(args[0], read_metadata(ctx))
    return 0


set_metadata = Action(_set_metadata, (
    string_flag(("-metadata", "m"), "metadata", "Metadata"),
    string_flag(("-metadata-file", "f"), "metadata_file", "Metadata File"),
))


# -- names


def _get_names(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    names = store.names(store.lookup(args[0]))
    if ctx.json:
        ctx.emit_json(list(names))
    else:
        ctx.out("".join(f"{name}\n" for name in names))
    return 0


get_names = Action(_get_names, (JSON,))


def _change_names(operation: str) -> Action:
    def run(ctx: Context, args: list[str]) -> int:
        store = ctx.store
        ident = store.lookup(args[0])
        wanted = ctx.texts("names")
        if operation == "add":
            store.add_names(ident, wanted)
        elif operation == "remove":
            store.remove_names(ident, wanted)
        else:
            store.set_names(ident, wanted)
        names = store.names(ident)
        if ctx.json:
            ctx.emit_json(list(names) or None)  # Go encodes the empty (nil) list as null
        return 0

    usage = {"add": "Name to add", "remove": "Name to remove", "set": "New name"}[operation]
    return Action(run, (list_flag(("-name", "n"), "names", usage), JSON))


add_names = _change_names("add")
remove_names = _change_names("remove")
set_names = _change_names("set")


# -- delete


def _delete(ctx: Context, args: list[str]) -> int:
    results: dict[str, str] = {}
    for arg in args:
        try:
            ctx.store.delete(arg)
            results[arg] = ""
        except StorageError as exc:
            results[arg] = str(exc)
    return report_deletions(ctx, results)


delete = Action(_delete, (JSON,))


# -- mount, unmount, mounted


def _mount(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    label = ctx.text("label")
    results: list[dict[str, str]] = []
    for arg in args:
        path, error = "", ""
        try:
            if ctx.flag("read_only"):
                path = store.mount_image(arg, (), label)
            else:
                path = store.mount(arg, label)
        except StorageError as exc:
            error = str(exc)
        results.append({"id": arg, "mountpoint": path, "error": error})
    if ctx.json:
        ctx.emit_json(results)
    else:
        for result in results:
            if result["error"]:
                ctx.stdout.flush()
                ctx.err(f"{result['error']} while mounting {result['id']}\n")
            ctx.out(f"{result['mountpoint']}\n")
    return 1 if any(result["error"] for result in results) else 0


mount = Action(_mount, (
    string_flag(("-opt", "o"), "opt", "Mount Options"),
    string_flag(("-label", "l"), "label", "Mount Label"),
    bool_flag(("-read-only", "-ro", "r"), "read_only", "Mount image readonly"),
    JSON,
))


def _unmount(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    force = ctx.flag("force")
    results: list[dict[str, str]] = []
    for arg in args:
        error = ""
        try:
            if not store.unmount(arg, force):
                ctx.out(f"{arg} mountpoint unmounted\n")
        except StorageError as exc:
            try:  # perhaps it is an image mounted with `mount -r`
                store.unmount_image(arg, force)
            except StorageError:
                error = str(exc)
        results.append({"id": arg, "error": error})
    return _report_mount_errors(ctx, results, "while unmounting {id}")


unmount = Action(_unmount, (JSON, bool_flag(("-force", "f"), "force", "Force the umount")))


def _mounted(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    results: list[dict[str, str]] = []
    for arg in args:
        error = ""
        try:
            if store.mounted(arg) > 0:
                ctx.out(f"{arg} mounted\n")
        except StorageError as exc:
            error = str(exc)
        results.append({"id": arg, "error": error})
    return _report_mount_errors(ctx, results, "checking if {id} is mounted")


mounted = Action(_mounted, (JSON,))


def _report_mount_errors(ctx: Context, results: list[dict[str, str]], suffix: str) -> int:
    if ctx.json:
        ctx.emit_json(results)
    else:
        ctx.stdout.flush()
        ctx.err("".join(f"{r['error']} {suffix.format(id=r['id'])}\n" for r in results if r["error"]))
    return 1 if any(r["error"] for r in results) else 0
