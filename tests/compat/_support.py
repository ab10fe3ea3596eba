"""Helpers shared by the compat tests: running CLIs and comparing the two implementations."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

GO_BINARY = "/usr/bin/containers-storage"
GO_MISSING = "Go containers-storage binary not installed (apt-get install containers-storage)"
GO_AVAILABLE = os.access(GO_BINARY, os.X_OK)
OUR_CLI = [sys.executable, "-m", "containers_storage"]


@dataclass
class Result:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    stdout_bytes: bytes

    def __str__(self) -> str:
        return (f"$ {' '.join(self.args)}\nrc={self.rc}\n--- stdout\n{self.stdout}"
                f"--- stderr\n{self.stderr}")


def run(argv: list[str], input: bytes | None = None, timeout: float = 60) -> Result:
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)
    return Result(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                  proc.stderr.decode("utf-8", "replace"), proc.stdout)


class CLI:
    """A ``containers-storage`` command line bound to one store."""

    def __init__(self, prefix: list[str], graph_root: str, run_root: str, driver: str) -> None:
        self.prefix = prefix
        self.graph_root = graph_root
        self.run_root = run_root
        self.driver = driver

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, "--graph", self.graph_root, "--run", self.run_root,
                "--storage-driver", self.driver, *args]

    def __call__(self, *args: str, input: bytes | None = None, check: bool = True) -> Result:
        """Run a command; with *check*, fail the test unless it exits 0 with a quiet stderr."""
        result = run(self.argv(*args), input=input)
        if check:
            assert result.rc == 0, f"command failed:\n{result}"
            assert result.stderr == "", f"unexpected stderr:\n{result}"
        return result

    def json(self, *args: str, check: bool = True) -> Any:
        """Run a command with ``-j`` (inserted after the command name) and parse stdout."""
        return parse_json(self.jrun(*args, check=check))

    def jrun(self, *args: str, check: bool = True) -> Result:
        command, *rest = args
        return self(command, "-j", *rest, check=check)

    def lines(self, *args: str) -> list[str]:
        return self(*args).stdout.splitlines()

    def create(self, *args: str) -> str:
        """Run a create-* command and return the new object's ID (first word of stdout)."""
        return self(*args).stdout.split()[0]


def parse_json(result: Result) -> Any:
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON:\n{result}") from exc


@functools.cache
def go_version() -> tuple[tuple[str, str], ...]:
    """``version -j`` of the Go binary (1.43 prints ``[]``)."""
    result = run([GO_BINARY, "version", "-j"])
    pairs = json.loads(result.stdout) if result.rc == 0 and result.stdout.strip() else []
    return tuple((k, v) for k, v in pairs)


def go_is_143() -> bool:
    return go_version() == ()


@functools.cache
def our_cli_problem() -> str | None:
    """Why our CLI cannot be used yet (None when ``python -m containers_storage version`` works)."""
    result = run([*OUR_CLI, "version"])
    if result.rc != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        return f"our CLI is not available yet (python -m containers_storage version: rc={result.rc}: " \
               f"{detail[0][:200]})"
    return None


def go_bytes(value: Any) -> bytes:
    """What Go's ``-j`` prints for *value*: Go's encoding plus a newline."""
    from containers_storage.records import go_json

    return go_json(value) + b"\n"


def nil_if_empty(values: list[Any]) -> list[Any] | None:
    """Go prints a nil slice as ``null`` (list-*-data of an object without big data)."""
    return values or None


def records(objs: Any) -> list[dict[str, Any]]:
    return [o.to_json() for o in objs]


# ---------------------------------------------------------------------------
# The big comparison


class Agreement:
    """Compares what the Go CLI reports about a store with our API (and our CLI).

    Every check parses Go's JSON and compares it with our records' ``to_json()``
    (readable diffs), then compares bytes: Go's stdout must equal Go's encoding
    of our records, and our CLI's stdout (when available) must equal Go's.
    """

    def __init__(self, go: CLI, store: Any, ours: CLI | None) -> None:
        self.go = go
        self.store = store
        self.ours = ours

    def _same(self, args: tuple[str, ...], expected: Any) -> Any:
        result = self.go.jrun(*args)
        shown = " ".join((args[0], "-j", *args[1:]))  # as run, for the messages
        got = parse_json(result)
        assert got == expected, f"Go `{shown}` disagrees with our API:\n" \
            f"  Go:   {got!r}\n  ours: {expected!r}"
        assert result.stdout_bytes == go_bytes(expected), \
            f"Go's bytes differ from our encoding for `{shown}`:\n" \
            f"  Go:   {result.stdout_bytes!r}\n  ours: {go_bytes(expected)!r}"
        if self.ours is not None:
            mine = self.ours.jrun(*args)
            assert parse_json(mine) == got, f"our CLI `{shown}` disagrees with Go:\n" \
                f"  Go:   {got!r}\n  ours: {parse_json(mine)!r}"
            assert mine.stdout_bytes == result.stdout_bytes, \
                f"our CLI's bytes differ from Go's for `{shown}`:\n" \
                f"  Go:   {result.stdout_bytes!r}\n  ours: {mine.stdout_bytes!r}"
        return got

    def _same_raw(self, args: tuple[str, ...], expected: bytes) -> None:
        result = self.go(*args)
        assert result.stdout_bytes == expected, f"Go `{' '.join(args)}` disagrees with our API:\n" \
            f"  Go:   {result.stdout_bytes!r}\n  ours: {expected!r}"
        if self.ours is not None:
            mine = self.ours(*args)
            assert mine.stdout_bytes == result.stdout_bytes, f"our CLI `{' '.join(args)}` disagrees with Go:\n" \
                f"  Go:   {result.stdout_bytes!r}\n  ours: {mine.stdout_bytes!r}"

    def listings(self) -> None:
        s = self.store
        self._same(("layers",), records(s.layers()))
        # Go 1.43 prints `null` for an empty image list (a nil slice), `[]` for the others.
        self._same(("images",), records(s.images()) or None)
        self._same(("containers",), records(s.containers()))

    def layers(self) -> None:
        s = self.store
        every = s.layers()
        if every:
            # One call for all IDs, one for all names: `layer -j REF...` prints them in argument order.
            self._same(("layer", *[o.id for o in every]), [s.layer(o.id).to_json() for o in every])
            named = [(name, o) for o in every for name in o.names]
            if named:
                self._same(("layer", *[n for n, _ in named]), [o.to_json() for _, o in named])
        for layer in every:
            self._same(("get-names", layer.id), s.names(layer.id))
            self._same(("list-layer-data", layer.id), nil_if_empty(s.list_layer_big_data(layer.id)))
            for key in layer.big_data_names:
                self._same_raw(("get-layer-data", layer.id, key), s.layer_big_data(layer.id, key))

    def images(self) -> None:
        s = self.store
        digests: set[str] = set()
        every = s.images()
        if every:
            # One call for all IDs, one for all names: `image -j REF...` prints them in argument order.
            self._same(("image", *[o.id for o in every]), [s.image(o.id).to_json() for o in every])
            named = [(name, o) for o in every for name in o.names]
            if named:
                self._same(("image", *[n for n, _ in named]), [o.to_json() for _, o in named])
        for image in every:
            self._same(("get-names", image.id), s.names(image.id))
            self._same(("list-image-data", image.id), nil_if_empty(s.list_image_big_data(image.id)))
            for key in image.big_data_names:
                self._same_raw(("get-image-data", image.id, key), s.image_big_data(image.id, key))
                self._same_raw(("get-image-data-size", image.id, key),
                               f"{s.image_big_data_size(image.id, key)}\n".encode())
                self._same_raw(("get-image-data-digest", image.id, key),
                               f"{s.image_big_data_digest(image.id, key)}\n".encode())
            digests.update(image.digests)
            if image.digest:
                digests.add(image.digest)
        for digest in sorted(digests):
            self._same(("images-by-digest", digest), records(s.images_by_digest(digest)))

    def containers(self) -> None:
        s = self.store
        every = s.containers()
        if every:
            # One call for all IDs, one for all names: `container -j REF...` prints them in argument order.
            self._same(("container", *[o.id for o in every]), [s.container(o.id).to_json() for o in every])
            named = [(name, o) for o in every for name in o.names]
            if named:
                self._same(("container", *[n for n, _ in named]), [o.to_json() for _, o in named])
        for ctr in every:
            self._same(("get-names", ctr.id), s.names(ctr.id))
            self._same(("list-container-data", ctr.id), nil_if_empty(s.list_container_big_data(ctr.id)))
            for key in ctr.big_data_names:
                self._same_raw(("get-container-data", ctr.id, key), s.container_big_data(ctr.id, key))
                self._same_raw(("get-container-data-size", ctr.id, key),
                               f"{s.container_big_data_size(ctr.id, key)}\n".encode())
                self._same_raw(("get-container-data-digest", ctr.id, key),
                               f"{s.container_big_data_digest(ctr.id, key)}\n".encode())

    def metadata_and_names(self, refs: list[str]) -> None:
        s = self.store
        # `metadata -j` is a Go map (keys sorted) of values with one trailing newline stripped.
        self._same(("metadata", *refs),
                   {ref: s.metadata(ref).removesuffix("\n") for ref in sorted(set(refs))})
        self._same(("exists", *refs), {ref: s.exists(ref) for ref in sorted(set(refs))})
        for ref in refs:
            if s.lookup(ref) != ref:  # names; IDs were checked per object
                self._same(("get-names", ref), s.names(ref))

    def everything(self, refs: list[str]) -> None:
        self.listings()
        self.layers()
        self.images()
        self.containers()
        self.metadata_and_names(refs)
