"""uid/gid map parsing, subuid/subgid ranges, CLI mapping flags and id translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from containers_storage import idtools
from containers_storage.errors import InvalidMappings, StorageError
from containers_storage.idtools import (
    go_quote,
    is_contiguous,
    mapping_options,
    parse_id_map,
    read_subid_ranges,
    root_pair,
    subid_mappings,
    to_container,
    to_host,
)
from containers_storage.records import IDMap

MALFORMED = 'initializing ID mappings: {} setting is malformed expected ["uint32:uint32:uint32"]: {}'


# --------------------------------------------------------------------------
# parse_id_map


def test_parse_single_triple() -> None:
    assert parse_id_map(["0:100000:65536"]) == [IDMap(0, 100000, 65536)]


def test_parse_several_triples_in_one_spec_and_several_specs() -> None:
    maps = parse_id_map(["0:1000:1:1:100000:65535", "70000:200000:10"])
    assert maps == [IDMap(0, 1000, 1), IDMap(1, 100000, 65535), IDMap(70000, 200000, 10)]


def test_parse_skips_empty_specs() -> None:
    assert parse_id_map([]) == []
    assert parse_id_map([""]) == []
    assert parse_id_map(["", "0:0:1"]) == [IDMap(0, 0, 1)]


def test_parse_accepts_uint32_bounds_and_leading_zeros() -> None:
    assert parse_id_map(["4294967295:0:007"]) == [IDMap(4294967295, 0, 7)]


@pytest.mark.parametrize(
    "spec",
    ["16", "a", "0:1", "0:1:1:", "0:1:x", "-1:0:1", "+1:0:1", " 1:0:1", "4294967296:0:1", "0:0:1_0", "::"],
)
def test_parse_malformed(spec: str) -> None:
    with pytest.raises(InvalidMappings) as info:
        parse_id_map([spec])
    assert str(info.value) == MALFORMED.format("uid", f'["{spec}"]')


def test_malformed_message_matches_upstream_exactly() -> None:
    with pytest.raises(InvalidMappings) as info:
        parse_id_map(["16"], "uid")
    assert str(info.value) == (
        'initializing ID mappings: uid setting is malformed expected ["uint32:uint32:uint32"]: ["16"]'
    )
    assert isinstance(info.value, StorageError) and isinstance(info.value, ValueError)


def test_malformed_message_lists_every_spec_go_style() -> None:
    with pytest.raises(InvalidMappings) as info:
        parse_id_map(["0:1:1", 'b"ad'], "gid")
    assert str(info.value) == MALFORMED.format("gid", '["0:1:1" "b\\"ad"]')


# --------------------------------------------------------------------------
# go_quote


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("", '""'),
        ("abc", '"abc"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb\tc", '"a\\nb\\tc"'),
        ("\x01", '"\\x01"'),
        ("\x7f", '"\\x7f"'),
        ("é", '"é"'),
        ("\u200b", '"\\u200b"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


# --------------------------------------------------------------------------
# subuid / subgid files


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_read_ranges_sorted_with_contiguous_container_ids(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "subuid",
        "# comment\n\nalice:300000:10\nbob:100000:65536\n  alice:200000:65536  \nalice:100:5\n",
    )
    assert read_subid_ranges("alice", path) == [
        IDMap(0, 100, 5),
        IDMap(5, 200000, 65536),
        IDMap(65541, 300000, 10),
    ]
    assert read_subid_ranges("bob", path) == [IDMap(0, 100000, 65536)]


def test_read_ranges_unknown_user_is_empty(tmp_path: Path) -> None:
    path = _write(tmp_path / "subuid", "alice:100000:65536\n")
    assert read_subid_ranges("nobody-such-user-xyz", path) == []


def test_read_ranges_all(tmp_path: Path) -> None:
    path = _write(tmp_path / "subuid", "a:200:10\nb:100:10\n")
    assert read_subid_ranges("ALL", path) == [IDMap(0, 100, 10), IDMap(10, 200, 10)]


def test_read_ranges_numeric_entry_matches_the_account_name(tmp_path: Path) -> None:
    # root is uid 0 everywhere: "0:..." lines belong to "root" and "root:..." lines to "0".
    path = _write(tmp_path / "subuid", "0:100000:10\nroot:200000:10\n")
    assert read_subid_ranges("root", path) == [IDMap(0, 100000, 10), IDMap(10, 200000, 10)]
    assert read_subid_ranges("0", path) == [IDMap(0, 100000, 10), IDMap(10, 200000, 10)]


def test_read_ranges_numeric_user_without_account(tmp_path: Path) -> None:
    path = _write(tmp_path / "subuid", "4000000123:100000:10\n")
    assert read_subid_ranges("4000000123", path) == [IDMap(0, 100000, 10)]


def test_read_ranges_group_database(tmp_path: Path) -> None:
    path = _write(tmp_path / "subgid", "0:100000:10\n")
    assert read_subid_ranges("root", path) == [IDMap(0, 100000, 10)]
    assert read_subid_ranges("root", path, group=True) == [IDMap(0, 100000, 10)]


def test_read_ranges_malformed_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "subuid", "alice:1\n")
    with pytest.raises(InvalidMappings) as info:
        read_subid_ranges("alice", path)
    assert str(info.value) == f"cannot parse subuid/gid information: Format not correct for {path} file"


def test_read_ranges_bad_number(tmp_path: Path) -> None:
    path = _write(tmp_path / "subuid", "alice:x:10\n")
    with pytest.raises(InvalidMappings) as info:
        read_subid_ranges("alice", path)
    assert str(info.value).startswith(f"string to int conversion failed during subuid/gid parsing of {path}")


def test_read_ranges_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing")
    with pytest.raises(InvalidMappings) as info:
        read_subid_ranges("alice", path)
    assert str(info.value) == f"open {path}: no such file or directory"
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_subid_mappings_errors_when_no_range(tmp_path: Path) -> None:
    subuid = _write(tmp_path / "subuid", "alice:100000:65536\n")
    subgid = _write(tmp_path / "subgid", "bob:100000:65536\n")
    with pytest.raises(InvalidMappings) as info:
        subid_mappings("alice", "alice", subuid_file=subuid, subgid_file=subgid)
    assert str(info.value) == f'no subgid ranges found for group "alice" in {subgid}'
    with pytest.raises(InvalidMappings) as info:
        subid_mappings("bob", "bob", subuid_file=subuid, subgid_file=subgid)
    assert str(info.value) == f'no subuid ranges found for user "bob" in {subuid}'


def test_subid_mappings_default_files_are_module_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idtools, "SUBUID_FILE", _write(tmp_path / "u", "alice:1000:10\n"))
    monkeypatch.setattr(idtools, "SUBGID_FILE", _write(tmp_path / "g", "alice:2000:20\n"))
    assert subid_mappings("alice", "alice") == ([IDMap(0, 1000, 10)], [IDMap(0, 2000, 20)])


# --------------------------------------------------------------------------
# CLI mapping flags


@pytest.fixture
def subid_files(tmp_path: Path) -> dict[str, str]:
    return {
        "subuid_file": _write(tmp_path / "subuid", "alice:100000:65536\nbob:300000:1000\n"),
        "subgid_file": _write(tmp_path / "subgid", "alice:200000:65536\nbob:400000:1000\n"),
    }


def test_mapping_options_nothing(subid_files: dict[str, str]) -> None:
    assert mapping_options([], [], None, None, False, False, **subid_files) == ([], [], False, False)


def test_mapping_options_host_flags_alone(subid_files: dict[str, str]) -> None:
    assert mapping_options([], [], None, None, True, True, **subid_files) == ([], [], True, True)
    assert mapping_options([""], [], None, None, True, False, **subid_files) == ([], [], True, False)


def test_mapping_options_explicit_maps(subid_files: dict[str, str]) -> None:
    uidmap, gidmap, host_uid, host_gid = mapping_options(
        ["0:1000:1:1:100000:1000"], ["0:2000:1"], None, None, False, False, **subid_files
    )
    assert uidmap == [IDMap(0, 1000, 1), IDMap(1, 100000, 1000)]
    assert gidmap == [IDMap(0, 2000, 1)]
    assert (host_uid, host_gid) == (False, False)


def test_mapping_options_one_sub_name_serves_both(subid_files: dict[str, str]) -> None:
    expected = ([IDMap(0, 100000, 65536)], [IDMap(0, 200000, 65536)], False, False)
    assert mapping_options([], [], "alice", None, False, False, **subid_files) == expected
    assert mapping_options([], [], None, "alice", False, False, **subid_files) == expected


def test_mapping_options_sub_ranges_come_before_explicit_maps(subid_files: dict[str, str]) -> None:
    uidmap, gidmap, _, _ = mapping_options(
        ["70000:5000:1"], ["70000:6000:1"], "alice", "bob", False, False, **subid_files
    )
    assert uidmap == [IDMap(0, 100000, 65536), IDMap(70000, 5000, 1)]
    assert gidmap == [IDMap(0, 400000, 1000), IDMap(70000, 6000, 1)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uidmap_specs": ["0:1:1"], "host_uid": True}, "host uid map specified along with UID mapping"),
        ({"subuidmap": "alice", "host_uid": True}, "host uid map specified along with UID mapping"),
        ({"gidmap_specs": ["0:1:1"], "host_gid": True}, "host gid map specified along with GID mapping"),
        ({"subgidmap": "alice", "host_gid": True}, "host gid map specified along with GID mapping"),
    ],
)
def test_mapping_options_host_conflicts(
    subid_files: dict[str, str], kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {
        "uidmap_specs": [],
        "gidmap_specs": [],
        "subuidmap": None,
        "subgidmap": None,
        "host_uid": False,
        "host_gid": False,
        **kwargs,
    }
    with pytest.raises(InvalidMappings) as info:
        mapping_options(**args, **subid_files)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_mapping_options_malformed_names_the_kind(subid_files: dict[str, str]) -> None:
    with pytest.raises(InvalidMappings) as info:
        mapping_options(["16"], [], None, None, False, False, **subid_files)
    assert str(info.value) == MALFORMED.format("uid", '["16"]')
    with pytest.raises(InvalidMappings) as info:
        mapping_options(["0:0:1"], ["bogus"], None, None, False, False, **subid_files)
    assert str(info.value) == MALFORMED.format("gid", '["bogus"]')


def test_mapping_options_unknown_sub_user(subid_files: dict[str, str]) -> None:
    with pytest.raises(InvalidMappings) as info:
        mapping_options([], [], "carol", None, False, False, **subid_files)
    assert str(info.value) == f'no subuid ranges found for user "carol" in {subid_files["subuid_file"]}'


# --------------------------------------------------------------------------
# Translation


MAPS = [IDMap(0, 100000, 1000), IDMap(1000, 5000, 10)]


def test_to_host_and_back() -> None:
    assert to_host(0, MAPS) == 100000
    assert to_host(999, MAPS) == 100999
    assert to_host(1000, MAPS) == 5000
    assert to_host(1009, MAPS) == 5009
    for cid in (0, 5, 999, 1000, 1009):
        assert to_container(to_host(cid, MAPS), MAPS) == cid


def test_translation_without_maps_is_identity() -> None:
    assert to_host(1234, []) == 1234
    assert to_container(1234, []) == 1234


def test_translation_outside_the_maps() -> None:
    with pytest.raises(InvalidMappings) as info:
        to_host(1010, MAPS)
    assert str(info.value) == "container ID 1010 cannot be mapped to a host ID"
    with pytest.raises(InvalidMappings) as info:
        to_container(99999, MAPS)
    assert str(info.value) == "host ID 99999 cannot be mapped to a container ID"


def test_root_pair() -> None:
    assert root_pair([], []) == (0, 0)
    assert root_pair(MAPS, [IDMap(0, 200000, 10)]) == (100000, 200000)
    # A single one-id map names root's host id whatever its container id.
    assert root_pair([IDMap(5, 1000, 1)], [IDMap(7, 1001, 1)]) == (1000, 1001)
    with pytest.raises(InvalidMappings):
        root_pair([IDMap(1, 1000, 10)], [])


def test_is_contiguous() -> None:
    assert is_contiguous([])
    assert is_contiguous([IDMap(0, 1, 1)])
    assert is_contiguous([IDMap(10, 110, 5), IDMap(0, 100, 10)])
    assert not is_contiguous([IDMap(0, 100, 10), IDMap(10, 111, 5)])
    assert not is_contiguous([IDMap(0, 100, 10), IDMap(11, 110, 5)])
