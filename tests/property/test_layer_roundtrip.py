"""Hypothesis round trips of layer contents through the Store API (vfs and overlay).

Random small trees are rendered as PAX tars with :mod:`tarfile`, imported with
``put_layer`` and checked two ways: ``diff`` gives back the very same bytes
(tar-split reassembly), and a mount of the layer shows exactly the modelled tree,
read with plain ``os`` calls.  The second property stacks a child diff with
whiteouts and opaque directories on a random parent and checks the merged view.
Set ``PROP_EXAMPLES`` (default 30) for a longer hunt.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import stat
import tarfile
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers_storage import Store
from containers_storage.records import Compression

from .conftest import StoreFactory

SETTINGS = settings(
    max_examples=int(os.environ.get('PROP_EXAMPLES', '30')),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# --------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class Node:
    """One archive entry; for the expected tree, a hard link is shown as ``file``."""

    kind: str  # "dir" | "file" | "symlink" | "hardlink"
    mode: int
    uid: int
    gid: int
    mtime: int
    data: bytes = b""
    target: str = ""  # symlink target, or the path a hard link points to
    xattrs: tuple[tuple[str, bytes], ...] = ()


Entries = list[tuple[str, Node]]  # archive order; paths are clean and relative


def _fits(name: str) -> bool:
    return 0 < len(name.encode()) <= 255 and name not in (".", "..") and not name.startswith(".wh.")


_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
components = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._- ", min_size=1, max_size=12),
    st.text(alphabet=_TEXT, min_size=1, max_size=12),
    st.integers(101, 255).map(lambda n: ("long-" + "n" * n)[:n]),  # > 100 bytes, up to NAME_MAX
    st.integers(51, 85).map(lambda n: "ü" * n + "€"),  # multi-byte, 105..173 bytes
    st.sampled_from(["ünïcödé", "日本語のファイル", "emoji-😀", "tab\there", "new\nline", "back\\slash"]),
).filter(_fits)

ids = st.one_of(
    st.sampled_from([0, 1, 1000, 65534, 65535, 65536, 2097151, 2097152, 2**31 - 1, 2**32 - 2]),
    st.integers(0, 2**32 - 2),
)
mtimes = st.one_of(st.just(1_700_000_000), st.integers(0, 2**32))
_XATTR_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=16).filter(
    lambda n: not n.startswith(("overlay", "containers")))
xattr_sets = st.dictionaries(
    st.tuples(st.sampled_from(["user.", "trusted."]), _XATTR_NAME).map("".join),
    st.binary(min_size=1, max_size=40),
    max_size=3,
).map(lambda d: tuple(sorted(d.items())))


@st.composite
def contents(draw: st.DrawFn) -> bytes:
    """Small random bytes, or sizes around the tar block and reader buffer boundaries."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    size = draw(st.sampled_from([0, 1, 511, 512, 513, 10240, (64 << 10) + 7, (1 << 20) + 3]))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(size)


symlink_targets = st.one_of(
    st.lists(st.one_of(components, st.just(".."), st.just(".")), min_size=1, max_size=4).map("/".join),
    st.lists(components, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    st.sampled_from(["/", "/etc/passwd", "../../../../etc/shadow", "dangling", "a" * 300]),
    st.text(alphabet=_TEXT, min_size=1, max_size=40),
).filter(lambda t: 0 < len(t.encode()) < 4096)


@st.composite
def trees(draw: st.DrawFn, max_dirs: int = 5, max_leaves: int = 8) -> Entries:
    """Directories first (each after its parent), then leaves; hard links follow their target."""
    entries: Entries = []
    dirs = [""]
    used: dict[str, set[str]] = {"": set()}

    def new_path(parent: str) -> str | None:
        name = draw(components)
        if name in used[parent]:
            return None
        used[parent].add(name)
        return f"{parent}/{name}" if parent else name

    for _ in range(draw(st.integers(0, max_dirs))):
        parent = draw(st.sampled_from([d for d in dirs if d.count("/") < 2]))
        path = new_path(parent)
        if path is None:
            continue
        dirs.append(path)
        used[path] = set()
        entries.append((path, Node("dir", draw(st.integers(0, 0o7777)), draw(ids), draw(ids), draw(mtimes),
                                   xattrs=draw(xattr_sets))))
    files: list[tuple[str, Node]] = []
    for _ in range(draw(st.integers(0, max_leaves))):
        kind = draw(st.sampled_from(["file", "file", "symlink", "hardlink"]))
        if kind == "hardlink" and not files:
            kind = "file"
        path = new_path(draw(st.sampled_from(dirs)))
        if path is None:
            continue
        if kind == "file":
            node = Node("file", draw(st.integers(0, 0o7777)), draw(ids), draw(ids), draw(mtimes),
                        data=draw(contents()), xattrs=draw(xattr_sets))
            files.append((path, node))
        elif kind == "symlink":
            node = Node("symlink", draw(st.integers(0, 0o7777)), draw(ids), draw(ids), draw(mtimes),
                        target=draw(symlink_targets))
        else:
            target, tnode = draw(st.sampled_from(files))
            # A real writer gives the link the inode's metadata; the applier applies it again.
            node = Node("hardlink", tnode.mode, tnode.uid, tnode.gid, tnode.mtime, target=target)
        entries.append((path, node))
    return entries


def render(entries: Entries, prefix: str = "") -> bytes:
    """The entries as a PAX tar written by CPython's tarfile."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for path, node in entries:
            info = tarfile.TarInfo(prefix + path)
            info.mode, info.uid, info.gid, info.mtime = node.mode, node.uid, node.gid, node.mtime
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                for k, v in node.xattrs}
            data = None
            if node.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif node.kind == "file":
                info.size = len(node.data)
                data = io.BytesIO(node.data)
            elif node.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, node.target
            else:
                info.type, info.linkname = tarfile.LNKTYPE, prefix + node.target
            tar.addfile(info, data)
    return buf.getvalue()


def expected_tree(entries: Entries) -> tuple[dict[str, Node], list[list[str]]]:
    """Path -> what a mount must show, and the groups of paths that must share an inode."""
    tree: dict[str, Node] = {}
    groups: dict[str, list[str]] = {}
    for path, node in entries:
        if node.kind == "hardlink":
            tree[path] = replace(tree[node.target], target="")
            groups.setdefault(node.target, [node.target]).append(path)
        else:
            if node.kind == "symlink":
                node = replace(node, mode=0o777, xattrs=())
            tree[path] = node
    return tree, list(groups.values())


# --------------------------------------------------------------------------
# Reading a mounted layer with plain os calls


@dataclass(frozen=True)
class Seen:
    node: Node
    inode: tuple[int, int]
    nlink: int


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    keys = [k for k in os.listxattr(path, follow_symlinks=False)
            if k.startswith(("user.", "trusted.")) and not k.startswith(("trusted.overlay.", "user.overlay."))]
    return tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False)) for k in keys))


def observe(root: str) -> dict[str, Seen]:
    out: dict[str, Seen] = {}

    def walk(rel: str) -> None:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            names = [e.name for e in it]
        for name in names:
            path = f"{rel}/{name}" if rel else name
            full = os.path.join(root, path)
            st_ = os.lstat(full)
            common = (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid)
            mtime, ns = divmod(st_.st_mtime_ns, 1_000_000_000)
            if ns:
                mtime = -1  # the archive has whole seconds only
            if stat.S_ISDIR(st_.st_mode):
                node = Node("dir", *common, mtime, xattrs=_xattrs(full))
            elif stat.S_ISREG(st_.st_mode):
                with open(full, "rb") as f:
                    node = Node("file", *common, mtime, data=f.read(), xattrs=_xattrs(full))
            elif stat.S_ISLNK(st_.st_mode):
                node = Node("symlink", *common, mtime, target=os.readlink(full), xattrs=_xattrs(full))
            else:
                node = Node(f"other:{stat.S_IFMT(st_.st_mode):o}:{st_.st_rdev}", *common, mtime)
            out[path] = Seen(node, (st_.st_dev, st_.st_ino), st_.st_nlink)
            if stat.S_ISDIR(st_.st_mode):
                walk(path)

    walk("")
    return out


def mounted(store: Store, ref: str) -> dict[str, Seen]:
    path = store.mount(ref)
    try:
        return observe(path)
    finally:
        store.unmount(ref)


def _short(node: Node) -> Node:
    """A node with its data replaced by a digest, for readable assertion output."""
    if len(node.data) > 64:
        return replace(node, data=b"sha256:" + hashlib.sha256(node.data).hexdigest().encode())
    return node


def assert_tree(seen: dict[str, Seen], tree: dict[str, Node], *, check_times: bool = True) -> None:
    assert sorted(seen) == sorted(tree)
    for path, want in tree.items():
        got = seen[path].node
        if not check_times:
            got, want = replace(got, mtime=0), replace(want, mtime=0)
        assert _short(got) == _short(want), path


def assert_links(seen: dict[str, Seen], tree: dict[str, Node], groups: list[list[str]]) -> None:
    grouped = {p for g in groups for p in g}
    for group in groups:
        assert len({seen[p].inode for p in group}) == 1, group
        assert seen[group[0]].nlink == len(group), group
    for path, node in tree.items():
        if node.kind == "file" and path not in grouped:
            assert seen[path].nlink == 1, path


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def diff_of(store: Store, ref: str) -> bytes:
    out = io.BytesIO()
    store.diff(ref, out=out, compression=Compression.NONE)
    return out.getvalue()


# --------------------------------------------------------------------------
# Property 1: one layer


@SETTINGS
@given(entries=trees(), dot=st.booleans(), gz=st.booleans())
def test_put_layer_diff_and_mount_round_trip(fresh_store: StoreFactory, entries: Entries, dot: bool,
                                             gz: bool) -> None:
    tar = render(entries, "./" if dot else "")
    tree, groups = expected_tree(entries)
    with fresh_store() as store:
        layer, _ = store.put_layer(diff=io.BytesIO(gzip.compress(tar, mtime=0) if gz else tar))
        assert layer.uncompressed_digest == sha(tar) and layer.uncompressed_size == len(tar)
        assert layer.compression == (Compression.GZIP if gz else Compression.NONE)
        assert layer.uidset == sorted({n.uid for _, n in entries})
        assert layer.gidset == sorted({n.gid for _, n in entries})
        back = diff_of(store, layer.id)
        assert sha(back) == sha(tar) and back == tar
        seen = mounted(store, layer.id)
        assert_tree(seen, tree)
        assert_links(seen, tree, groups)


# --------------------------------------------------------------------------
# Property 2: a child with whiteouts and opaque directories over a random parent


@dataclass(frozen=True)
class Child:
    entries: Entries  # the child tar, whiteout and opaque markers included
    merged: dict[str, Node]  # what a mount of the child must show


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


@st.composite
def children(draw: st.DrawFn, parent: Entries) -> Child:
    tree, _ = expected_tree(parent)
    paths = sorted(tree)
    dirs = [p for p in paths if tree[p].kind == "dir"]

    whiteouts = draw(st.lists(st.sampled_from(paths), max_size=3, unique=True)) if paths else []
    ghost_dir = draw(st.sampled_from(["", *dirs]))
    ghost = draw(components)  # a whiteout for a name the parent does not have
    ghost_path = f"{ghost_dir}/{ghost}" if ghost_dir else ghost
    if ghost_path not in tree and draw(st.booleans()):
        whiteouts.append(ghost_path)
    # A whiteout inside a whited-out directory would need that directory's entry again, which
    # resurrects it (as a plain directory over the lower one on overlay): not a sensible diff.
    whiteouts = [w for w in whiteouts if not any(w != v and _under(w, v) for v in whiteouts)]
    alive_dirs = [d for d in dirs if not any(_under(d, w) for w in whiteouts)]
    opaque = draw(st.lists(st.sampled_from(alive_dirs), max_size=2, unique=True)) if alive_dirs else []
    # Overlayfs lists an opaque directory straight from the upper one, so a whiteout device inside
    # it shows up in readdir but cannot be looked up (upstream writes the same on-disk result).
    # A whiteout under an opaque directory is redundant anyway: leave those out.
    whiteouts = [w for w in whiteouts if not any(w.startswith(o + "/") for o in opaque)]

    merged = {p: n for p, n in tree.items()
              if not any(_under(p, w) for w in whiteouts) and not any(p.startswith(o + "/") for o in opaque)}
    items: dict[str, Node] = {}  # the child's own entries (not markers)
    for o in opaque:
        items[o] = replace(tree[o], mode=draw(st.integers(0, 0o7777)), uid=draw(ids))
    targets = ["", *[d for d in dirs if d in merged]]
    for _ in range(draw(st.integers(0, 5))):
        where = draw(st.sampled_from(targets + opaque))
        name = draw(components)
        path = f"{where}/{name}" if where else name
        if path in items or any(_under(path, w) for w in whiteouts):
            continue
        old = merged.get(path)
        if old is not None and old.kind != "file":
            continue  # only same-type replacements: dir<->file swaps differ by design between drivers
        items[path] = Node("file", draw(st.integers(0, 0o7777)), draw(ids), draw(ids), draw(mtimes),
                           data=draw(contents()), xattrs=draw(xattr_sets))

    entries: dict[str, Node] = {}
    marker = Node("file", 0, 0, 0, 0)

    def ancestors(path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in entries:
                entries[d] = items.get(d) or tree[d]  # unchanged parents keep their metadata

    for w in whiteouts:
        head, _, base = w.rpartition("/")
        wpath = f"{head}/.wh.{base}" if head else f".wh.{base}"
        ancestors(wpath)
        entries[wpath] = marker
    for o in opaque:
        ancestors(o + "/.wh..wh..opq")
        entries[o] = items[o]
        entries[o + "/.wh..wh..opq"] = replace(marker, mode=0o755)
    for path, node in items.items():
        ancestors(path)
        entries[path] = node
    for path, node in entries.items():
        if not os.path.basename(path).startswith(".wh."):
            merged[path] = node
    # Sorted by components: parents first; markers land wherever their names sort.
    ordered = sorted(entries.items(), key=lambda kv: kv[0].split("/"))
    return Child(ordered, merged)


@st.composite
def parent_and_child(draw: st.DrawFn) -> tuple[Entries, Child]:
    parent = draw(trees(max_dirs=5, max_leaves=8))
    return parent, draw(children(parent))


@SETTINGS
@given(case=parent_and_child(), dot=st.booleans())
def test_child_whiteouts_and_opaque_dirs_merge(fresh_store: StoreFactory, case: tuple[Entries, Child],
                                               dot: bool) -> None:
    parent, child = case
    prefix = "./" if dot else ""
    parent_tar, child_tar = render(parent, prefix), render(child.entries, prefix)
    with fresh_store() as store:
        base, _ = store.put_layer(diff=io.BytesIO(parent_tar))
        layer, _ = store.put_layer(parent=base.id, diff=io.BytesIO(child_tar))
        assert layer.uncompressed_digest == sha(child_tar)
        back = diff_of(store, layer.id)
        assert sha(back) == sha(child_tar) and back == child_tar
        assert_tree(mounted(store, layer.id), child.merged)
        parent_tree, groups = expected_tree(parent)
        seen = mounted(store, base.id)
        assert_tree(seen, parent_tree)  # the parent is untouched by its child
        assert_links(seen, parent_tree, groups)
