"""Layer contents across implementations: Go imports and we diff, we import and Go diffs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from ._support import CLI


def _tar(tmp: Path) -> bytes:
    """A small but varied layer: dirs, files, a hard link, a symlink, a fifo, xattrs, ownership."""
    src = tmp / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hostname").write_text("compat\n")
    os.link(src / "etc" / "hostname", src / "etc" / "hostname.hl")
    (src / "usr" / "bin").mkdir(parents=True)
    tool = src / "usr" / "bin" / "tool"
    tool.write_bytes(os.urandom(200_000))
    os.chown(tool, 1000, 1001)
    os.chmod(tool, 0o4755)
    os.symlink("tool", src / "usr" / "bin" / "alias")
    os.mkfifo(src / "fifo")
    os.setxattr(src / "etc" / "hostname", "user.note", b"hi")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=".")
    return buf.getvalue()


def _child_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/.wh.hostname.hl")
        tar.addfile(info, io.BytesIO(b""))
        data = b"changed\n"
        info = tarfile.TarInfo("etc/hostname")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _chain_tars(tmp_path: Path) -> tuple[Path, Path]:
    """A base layer's tar and a child's (a whiteout and a changed file) in *tmp_path*."""
    base = tmp_path / "base.tar"
    base.write_bytes(_tar(tmp_path))
    child = tmp_path / "child.tar"
    child.write_bytes(_child_tar())
    return base, child


def _import_chain(cli: CLI, base: Path, child: Path) -> tuple[str, str]:
    """Import *base*, then *child* on top of it; their layer IDs."""
    base_id = cli.create("import-layer", "-f", str(base))
    return base_id, cli.create("import-layer", "-f", str(child), base_id)


def _record(cli: CLI, ref: str) -> dict[str, Any]:
    layer: dict[str, Any] = cli.json("layer", ref)[0]
    return {k: layer.get(k) for k in ("compressed-diff-digest", "compressed-size", "diff-digest", "diff-size",
                                       "compression", "uidset", "gidset")}


def test_import_and_diff_agree_both_ways(go: CLI, our_cli: CLI, tmp_path: Path) -> None:
    raw = _tar(tmp_path)
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip.compress(raw))
    ours = our_cli.create("import-layer", "-n", "ours", "-f", str(blob))
    theirs = go.create("import-layer", "-n", "theirs", "-f", str(blob))
    assert _record(our_cli, ours) == _record(go, theirs)
    assert _record(go, ours) == _record(our_cli, theirs)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert _record(our_cli, ours)["diff-digest"] == digest
    # Reassembled from tar-split: the original tar, byte for byte, by either tool on either layer.
    for cli in (go, our_cli):
        for ref in (ours, theirs):
            assert cli("diff", "-u", ref).stdout_bytes == raw, (cli, ref)
    assert go("diffsize", ours).stdout == our_cli("diffsize", theirs).stdout


def test_child_changes_and_sizes_agree(go: CLI, our_cli: CLI, tmp_path: Path) -> None:
    base, child = _chain_tars(tmp_path)
    _go_base, go_child = _import_chain(go, base, child)
    _our_base, our_child = _import_chain(our_cli, base, child)
    for cli in (go, our_cli):
        got = {ref: sorted(cli("changes", ref).stdout.splitlines()) for ref in (go_child, our_child)}
        assert got[go_child] == got[our_child]
        assert '"/etc/hostname.hl"' in "".join(got[go_child])
        assert cli("diff", "-u", our_child).stdout_bytes == child.read_bytes()
    ours_json = sorted(json.loads(our_cli("changes", "-j", go_child).stdout), key=str)
    theirs_json = sorted(json.loads(go("changes", "-j", go_child).stdout), key=str)
    assert ours_json == theirs_json
    assert go("diffsize", our_child).stdout == our_cli("diffsize", go_child).stdout
    # Go mounts our child and sees the whiteout applied and the new content.
    mount = go("mount", our_child).stdout.strip()
    try:
        assert Path(mount, "etc", "hostname").read_text() == "changed\n"
        assert not Path(mount, "etc", "hostname.hl").exists()
        assert Path(mount, "usr", "bin", "alias").is_symlink()
    finally:
        go("unmount", our_child)


def test_our_check_finds_nothing_wrong_in_go_layers_and_real_damage(go: CLI, our_cli: CLI, tmp_path: Path) -> None:
    """No false positives on layers the Go binary made (its tar-split, whiteouts, links, fifo)."""
    base, child = _chain_tars(tmp_path)
    go_base, go_child = _import_chain(go, base, child)
    go("create-image", go_child)
    for flags in ((), ("-q",)):
        result = our_cli("check", *flags, check=False)
        assert (result.rc, result.stdout, result.stderr) == (0, "", ""), flags
    # A file the Go layer's diff named goes missing: both modes name it.
    home = Path(our_cli.graph_root, our_cli.driver)
    tool = next(p for p in home.glob("*/**/usr/bin/tool") if go_base in str(p))
    tool.unlink()
    for flags in ((), ("-q",)):
        result = our_cli("check", *flags, check=False)
        assert result.rc == 1, flags
        assert f" layer {go_base}: -/usr/bin/tool: layer content modified" in result.stdout.splitlines(), flags
