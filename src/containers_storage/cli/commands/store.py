"""Store-wide commands: status, version, wipe, shutdown, gc, config."""

from __future__ import annotations

from ...errors import StorageError
from ..context import Action, CommandError, Context, error_text
from ..flags import bool_flag
from . import JSON

# The library version upstream's CLI reports (``Store.version()``).  Repeated here so that
# `containers-storage version` needs neither the store nor its dependencies; a test keeps the
# two equal.
STORAGE_VERSION = "1.60.0-dev"


def _pairs(ctx: Context, pairs: list[tuple[str, str]]) -> None:
    """Key/value pairs: JSON array of pairs on stdout, or ``Key: Value`` lines on stderr."""
    if ctx.json:
        ctx.emit_json([list(pair) for pair in pairs])
    else:
        ctx.err("".join(f"{key}: {value}\n" for key, value in pairs))


def _status(ctx: Context, args: list[str]) -> int:
    try:
        pairs = ctx.store.status()  # Root, Run Root, Driver Name, Driver Options, driver pairs
    except StorageError as exc:
        ctx.err(f"status: {exc}\n")
        return 1
    _pairs(ctx, pairs)
    return 0


status = Action(_status, (JSON,))


def _version(ctx: Context, args: list[str]) -> int:
    _pairs(ctx, [("Version", STORAGE_VERSION)])
    return 0


version = Action(_version, (JSON,), store=False)


def _wipe(ctx: Context, args: list[str]) -> int:
    try:
        ctx.store.wipe()
    except StorageError as exc:
        if ctx.json:
            ctx.emit_json({})  # Go encodes an error value as {}
            return 1
        raise CommandError(f"{ctx.command}: {exc}") from exc
    if ctx.json:
        ctx.emit_json("")
    return 0


wipe = Action(_wipe, (JSON,))


def _shutdown(ctx: Context, args: list[str]) -> int:
    try:
        ctx.store.shutdown(force=ctx.flag("force"))
    except StorageError as exc:
        if ctx.json:
            ctx.emit_json({})
            return 1
        raise CommandError(f"{ctx.command}: {exc}") from exc
    if ctx.json:
        ctx.emit_json("")
    return 0


shutdown = Action(_shutdown, (JSON, bool_flag(("-force", "f"), "force", "Unmount mounted layers first")))


def _gc(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    try:
        store.garbage_collect()
    finally:
        try:
            store.shutdown(force=True)
        except (StorageError, OSError) as exc:
            ctx.err(f"shutdown: {error_text(exc)}\n")
    if ctx.json:
        ctx.emit_json("")
    return 0


gc = Action(_gc, (JSON,))


def _config(ctx: Context, args: list[str]) -> int:
    from ...options import default_store_options, load_config_file

    try:
        options = default_store_options()
    except (StorageError, OSError) as exc:
        raise CommandError(f"default: {error_text(exc)}") from exc
    if args:
        try:
            options = load_config_file(args[0], options)
        except (StorageError, OSError) as exc:
            raise CommandError(f"reload: {error_text(exc)}") from exc
    ctx.emit_json(options.to_config_json())
    return 0


config = Action(_config, store=False)
