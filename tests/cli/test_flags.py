"""The mflag-style parser on its own."""

from __future__ import annotations

import pytest

from containers_storage.cli.flags import (
    FlagError,
    FlagSet,
    FlagValue,
    HelpRequested,
    bool_flag,
    go_quote,
    list_flag,
    string_flag,
)

FLAGS = (
    bool_flag(("-json", "j"), "json", "Prefer JSON output"),
    bool_flag(("-quiet", "q"), "quiet", "Only print IDs"),
    string_flag(("-id", "i"), "id", "Layer ID"),
    list_flag(("-name", "n"), "names", "Layer name"),
    string_flag(("-graph", "g"), "graph", "Root of the storage tree"),
)


def parse(*args: str) -> tuple[dict[str, FlagValue], list[str]]:
    values: dict[str, FlagValue] = {}
    rest = FlagSet("test", FLAGS, values).parse(args)
    return values, rest


def test_defaults() -> None:
    values, rest = parse()
    assert values == {"json": False, "quiet": False, "id": "", "names": [], "graph": ""}
    assert rest == []


@pytest.mark.parametrize("args", [
    ("--id", "x"), ("--id=x"), ("-i", "x"), ("-i=x",), ("--id='x'",), ('--id="x"',),
])
def test_value_spellings(args: tuple[str, ...] | str) -> None:
    values, _ = parse(*((args,) if isinstance(args, str) else args))
    assert values["id"] == "x"


def test_quotes_only_trimmed_after_equals() -> None:
    assert parse("--id", "'x'")[0]["id"] == "'x'"
    assert parse("--id='x\"")[0]["id"] == "'x\""


def test_booleans() -> None:
    assert parse("-j")[0]["json"] is True
    assert parse("--json")[0]["json"] is True
    for false in ("false", "0", "f", "F", "FALSE", "False"):
        assert parse("-j", f"--json={false}")[0]["json"] is False
    for true in ("true", "1", "t", "T", "TRUE", "True"):
        assert parse(f"-j={true}")[0]["json"] is True


def test_boolean_does_not_take_next_argument() -> None:
    values, rest = parse("-j", "false")
    assert values["json"] is True
    assert rest == ["false"]


def test_invalid_boolean_message() -> None:
    with pytest.raises(FlagError) as info:
        parse("-j=maybe")
    assert str(info.value) == (
        'invalid boolean value "maybe" for  -j: strconv.ParseBool: parsing "maybe": invalid syntax'
    )


def test_clustered_booleans() -> None:
    values, rest = parse("-jq", "x")
    assert values["json"] is True and values["quiet"] is True
    assert rest == ["x"]


def test_cluster_with_value_flag_takes_next_argument() -> None:
    values, rest = parse("-jn", "name", "pos")
    assert values["json"] is True
    assert values["names"] == ["name"]
    assert rest == ["pos"]


def test_unknown_cluster() -> None:
    with pytest.raises(FlagError) as info:
        parse("-jx")
    assert str(info.value) == "flag provided but not defined: -jx"


@pytest.mark.parametrize(("arg", "message"), [
    ("-x", "flag provided but not defined: -x"),
    ("--bogus", "flag provided but not defined: --bogus"),
    ("--bogus=1", "flag provided but not defined: --bogus"),
    ("-=x", "bad flag syntax: -=x"),
])
def test_unknown_flags(arg: str, message: str) -> None:
    with pytest.raises(FlagError) as info:
        parse(arg)
    assert str(info.value) == message


def test_missing_value() -> None:
    with pytest.raises(FlagError) as info:
        parse("--graph")
    assert str(info.value) == "flag needs an argument: --graph"
    with pytest.raises(FlagError) as info:
        parse("-i")
    assert str(info.value) == "flag needs an argument: -i"


@pytest.mark.parametrize("arg", ["-h", "-help", "--help"])
def test_help(arg: str) -> None:
    with pytest.raises(HelpRequested):
        parse("-j", arg)


def test_value_may_look_like_a_flag() -> None:
    assert parse("--id", "-j")[0] == {"json": False, "quiet": False, "id": "-j", "names": [], "graph": ""}


def test_stops_at_first_positional() -> None:
    values, rest = parse("-j", "parent", "-n", "x")
    assert values["json"] is True
    assert values["names"] == []
    assert rest == ["parent", "-n", "x"]


def test_double_dash_and_single_dash() -> None:
    values, rest = parse("--", "-j")
    assert values["json"] is False and rest == ["-j"]
    values, rest = parse("-", "-j")
    assert values["json"] is False and rest == ["-", "-j"]


def test_last_wins_and_lists_accumulate() -> None:
    values, _ = parse("-i", "a", "--id", "b", "-n", "x", "--name=y", "-n", "z")
    assert values["id"] == "b"
    assert values["names"] == ["x", "y", "z"]


def test_shared_values_between_sets() -> None:
    values: dict[str, FlagValue] = {}
    FlagSet("global", FLAGS[4:], values).parse(["-g", "/one", "cmd"])
    FlagSet("cmd", FLAGS, values).parse(["-g", "/two"])
    assert values["graph"] == "/two"


def test_defaults_text_matches_mflag() -> None:
    values: dict[str, FlagValue] = {"graph": "/tmp/gx/g"}
    flags = FlagSet("layers", (
        string_flag(("-run", "R"), "run", "Root of the runtime state tree"),
        string_flag(("-graph", "g"), "graph", "Root of the storage tree"),
        string_flag(("-storage-driver", "s"), "driver", "Storage driver to use ($STORAGE_DRIVER)"),
        list_flag(("-storage-opt",), "storage_opt", "Set storage driver options ($STORAGE_OPTS)"),
        bool_flag(("-debug", "D"), "debug", "Print debugging information"),
        bool_flag(("-tree", "t"), "tree", "Use a tree"),
        bool_flag(("-json", "j"), "json", "Prefer JSON output"),
        bool_flag(("#help", "-help"), "help", "Print usage"),
    ), values)
    values["json"] = True  # set after definition: the table shows the definition-time default
    assert flags.defaults_text({"driver": "vfs", "run": "/tmp/gx/r"}) == (
        "\n"
        "  --debug, -D                 Print debugging information\n"
        "  --graph, -g=/tmp/gx/g       Root of the storage tree\n"
        "  --help                      Print usage\n"
        "  --json, -j                  Prefer JSON output\n"
        "  --run, -R=/tmp/gx/r         Root of the runtime state tree\n"
        "  --storage-driver, -s=vfs    Storage driver to use ($STORAGE_DRIVER)\n"
        "  --storage-opt=[]            Set storage driver options ($STORAGE_OPTS)\n"
        "  --tree, -t                  Use a tree\n"
    )


def test_defaults_text_minimum_width_and_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    values: dict[str, FlagValue] = {"graph": "/home/u/store"}
    flags = FlagSet("x", (string_flag(("-graph", "g"), "graph", "Root"), bool_flag(("f",), "f", "F")), values)
    # Column width: the longest cell plus 3, but at least 20.
    assert flags.defaults_text() == "\n  -f" + " " * 20 + " F\n  --graph, -g=~/store    Root\n"
    assert FlagSet("y", (bool_flag(("f",), "f", "F"),), {}).defaults_text() == "\n  -f" + " " * 16 + " F\n"


def test_long_name_needs_two_dashes_when_spelled_as_one_word() -> None:
    with pytest.raises(FlagError) as info:
        parse("-id", "x")  # not --id: the letters -i -d, and there is no -d
    assert str(info.value) == "flag provided but not defined: -id"


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
