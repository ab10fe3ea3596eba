"""What a command's action receives: its parsed flags, the store and the output streams.

Kept free of heavy imports: the store, records and msgspec are imported only when an action
actually needs them, so ``containers-storage version`` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from ..errors import StorageError
from .flags import Flag, FlagValue

if TYPE_CHECKING:
    from ..records import Container, Image, Layer
    from ..store import Store


class CommandError(Exception):
    """A failure whose message the CLI prints on stderr before exiting with status 1."""


class Action(NamedTuple):
    """A command's behaviour: the flags it adds to the global ones and the function to run.

    ``run(ctx, args)`` returns the exit status; it may raise ``StorageError``, ``OSError`` or
    :class:`CommandError`, which the CLI prints on stderr with status 1.  ``store=False`` runs
    without opening the store (``version``, ``config``).  ``driver=False`` marks a command that
    only reads records (the listings): the graph driver is then not set up unless used
    (every other command sets it up first, so that its errors read ``error initializing: ...``
    as upstream's do).
    """

    run: Callable[[Context, list[str]], int]
    flags: tuple[Flag, ...] = ()
    store: bool = True
    driver: bool = True


class Context:
    """Per-invocation state handed to an :class:`Action`."""

    __slots__ = ("_store", "command", "stderr", "stdin", "stdout", "values")

    def __init__(self, command: str, values: Mapping[str, FlagValue], stdout: IO[str], stderr: IO[str],
                 stdin: IO[str], store: Store | None = None) -> None:
        self.command = command
        self.values = values
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError(f"command {self.command} runs without a store")
        return self._store

    # -- flags

    def flag(self, dest: str) -> bool:
        value = self.values[dest]
        assert isinstance(value, bool)
        return value

    def text(self, dest: str) -> str:
        value = self.values[dest]
        assert isinstance(value, str)
        return value

    def texts(self, dest: str) -> list[str]:
        value = self.values[dest]
        assert isinstance(value, list)
        return list(value)

    @property
    def json(self) -> bool:
        return self.flag("json")

    # -- output

    def out(self, text: str) -> None:
        self.stdout.write(text)

    def err(self, text: str) -> None:
        self.stderr.write(text)

    def emit_json(self, value: Any) -> None:
        """Write *value* as one Go-encoded JSON document and a newline on stdout."""
        from ..records import go_json

        self.stdout.write(go_json(value).decode("utf-8", "replace") + "\n")

    def emit_records(self, records: Sequence[Layer | Image | Container]) -> None:
        """Write records as the JSON array Go prints (the persisted shapes)."""
        from ..records import iter_encoded_records

        self._write_json_pieces(iter_encoded_records(records))

    def emit_record(self, record: Layer | Image | Container) -> None:
        from ..records import encode_record

        self._write_json_bytes(encode_record(record))

    def _write_json_bytes(self, data: bytes) -> None:
        self._write_json_pieces((data,))

    def _write_json_pieces(self, pieces: Iterable[bytes]) -> None:
        """Write one JSON document, given in pieces, and a newline."""
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is None:  # a text-only stream (some test harnesses)
            self.stdout.write(b"".join(pieces).decode("utf-8", "replace") + "\n")
            return
        self.stdout.flush()
        for piece in pieces:
            buffer.write(piece)
        buffer.write(b"\n")
        buffer.flush()

    def out_bytes(self, data: bytes) -> None:
        """Write raw bytes to stdout (big-data items)."""
        self.stdout.flush()
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:  # a text-only stream (some test harnesses)
            self.stdout.write(data.decode("utf-8", "surrogateescape"))

    def read_input(self, path: str) -> bytes:
        """Read all of *path*, or of standard input when *path* is empty."""
        if path:
            with open(path, "rb") as f:
                return f.read()
        buffer = getattr(self.stdin, "buffer", None)
        if buffer is not None:
            data: bytes = buffer.read()
            return data
        return self.stdin.read().encode("utf-8", "surrogateescape")


def go_list(items: list[str] | list[int] | tuple[int, ...]) -> str:
    """Go's ``%v`` of a slice: ``[a b c]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def error_text(exc: BaseException) -> str:
    """The message Go would print for *exc* (OS errors as ``open PATH: no such file or directory``)."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, StorageError):
        reason = exc.strerror[:1].lower() + exc.strerror[1:]
        if exc.filename is not None:
            return f"open {exc.filename}: {reason}"
        return reason
    return str(exc)

