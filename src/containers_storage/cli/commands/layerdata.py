"""Commands that move layer contents: import-layer, applydiff, diff, diffsize, changes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, BinaryIO, cast

from ..context import Action, CommandError, Context
from ..flags import bool_flag, string_flag
from . import JSON
from .layers import NEW_LAYER_FLAGS, new_layer_arguments, print_new_layer

INPUT_FILE = string_flag(("-file", "f"), "file", "Read from file instead of stdin")


def _input(ctx: Context) -> BinaryIO:
    path = ctx.text("file")
    if path:
        return open(path, "rb")
    buffer = getattr(ctx.stdin, "buffer", None)
    if buffer is None:  # a text-only stream (some test harnesses)
        import io

        return io.BytesIO(ctx.stdin.read().encode("utf-8", "surrogateescape"))
    stream: BinaryIO = buffer
    return stream


@contextmanager
def _input_with_progress(ctx: Context, label: str) -> Iterator[BinaryIO]:
    """The command's input; on a terminal, how much of it was read is shown meanwhile."""
    from ..progress import Progress, ProgressReader

    progress = Progress(ctx.stderr, label)
    with _input(ctx) as diff:
        try:
            yield cast(BinaryIO, ProgressReader(diff, progress)) if progress.enabled else diff
        finally:
            progress.done()


# -- import-layer


def _import_layer(ctx: Context, args: list[str]) -> int:
    with _input_with_progress(ctx, "importing layer") as diff:
        new, _size = ctx.store.put_layer(**new_layer_arguments(ctx, args), diff=diff)
    return print_new_layer(ctx, new)


import_layer = Action(_import_layer, (*NEW_LAYER_FLAGS, INPUT_FILE))


# -- applydiff


def _applydiff(ctx: Context, args: list[str]) -> int:
    with _input_with_progress(ctx, "applying diff") as diff:
        ctx.store.apply_diff(args[0], diff)
    return 0


applydiff = Action(_applydiff, (INPUT_FILE,))


# -- diff


def _diff(ctx: Context, args: list[str]) -> int:
    from ...records import Compression

    compression: int | None = None
    # Upstream's precedence when several are given: xz > bzip2 > gzip > none.
    if ctx.flag("uncompressed"):
        compression = Compression.NONE
    if ctx.flag("gzip"):
        compression = Compression.GZIP
    if ctx.flag("bzip2"):
        compression = Compression.BZIP2
    if ctx.flag("xz"):
        compression = Compression.XZ
    path = ctx.text("file")
    ctx.stdout.flush()
    if path:
        with open(path, "wb") as f:
            ctx.store.diff(args[0], args[1] if len(args) > 1 else None, f, compression)
        return 0
    out = _binary_stdout(ctx.stdout)
    ctx.store.diff(args[0], args[1] if len(args) > 1 else None, out, compression)
    out.flush()
    return 0


def _binary_stdout(stream: IO[str]) -> BinaryIO:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        out: BinaryIO = buffer
        return out
    if stream is sys.__stdout__:
        return os.fdopen(os.dup(1), "wb")
    raise CommandError("diff needs a binary standard output (use --file)")


diff = Action(_diff, (
    string_flag(("-file", "f"), "file", "Write to file instead of stdout"),
    bool_flag(("-uncompressed", "u"), "uncompressed", "Use no compression"),
    bool_flag(("-gzip", "c"), "gzip", "Compress using gzip"),
    bool_flag(("-bzip2", "-bz2", "b"), "bzip2", "Compress using bzip2 (not currently supported)"),
    bool_flag(("-xz", "x"), "xz", "Compress using xz (not currently supported)"),
))


# -- diffsize


def _diffsize(ctx: Context, args: list[str]) -> int:
    size = ctx.store.diff_size(args[0], args[1] if len(args) > 1 else None)
    ctx.out(f"{size}\n")
    return 0


diffsize = Action(_diffsize, ())


# -- changes


def _changes(ctx: Context, args: list[str]) -> int:
    from ...archive.changes import format_change

    found = ctx.store.changes(args[0], args[1] if len(args) > 1 else None)
    if ctx.json:
        ctx.emit_json([{"Path": c.path, "Kind": c.kind} for c in found])
    else:
        ctx.out("".join(format_change(c) + "\n" for c in found))
    return 0


changes = Action(_changes, (JSON,))
