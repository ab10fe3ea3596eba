"""Invocation rules of cli.md §1 through ``main()``: usage, exit codes, global flags, logging."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from containers_storage.cli.main import COMMANDS, find_command

from .conftest import Run


def test_no_arguments_prints_usage_and_fails(run_raw: Run) -> None:
    result = run_raw()
    assert result.rc == 1
    assert result.out.startswith("Usage: containers-storage command [options [...]]\n\nCommands:\n\n")
    assert "  create-layer                  Create a new layer\n" in result.out
    assert result.out.endswith("\nOptions:\n")
    assert "  --graph, -g             Root of the storage tree\n" in result.err
    assert "--help" not in result.err  # upstream defines --help only when parsing


def test_help_before_command(run_raw: Run) -> None:
    result = run_raw("--help")
    assert result.rc == 0
    assert "Commands:" in result.out
    assert "  --help                  Print usage\n" in result.out  # option table on stdout here
    assert result.err == ""


def test_dash_h_before_command_is_an_error(run_raw: Run) -> None:
    result = run_raw("-h")
    assert result.rc == 1
    assert "flag: help requested while parsing arguments (1)\n" in result.out


def test_unknown_global_flag(run_raw: Run) -> None:
    result = run_raw("-x", "layers")
    assert result.rc == 1
    assert result.out.startswith("flag provided but not defined: -x while parsing arguments (1)\nUsage: ")
    assert result.err.startswith("flag provided but not defined: -x\nSee 'containers-storage --help'.\n")


def test_unknown_command(cli: Run) -> None:
    result = cli("bogus")
    assert (result.rc, result.out, result.err) == (1, "bogus: unrecognized command.\n", "")


def test_no_command_after_global_flags(cli: Run) -> None:
    result = cli()
    assert result.rc == 1
    assert result.out.startswith("Usage: containers-storage command")


def test_unknown_command_flag_exits_125(cli: Run) -> None:
    result = cli("layers", "-x")
    assert result.rc == 125
    assert result.out == ""
    assert result.err == "flag provided but not defined: -x\nSee 'containers-storage layers --help'.\n"


def test_command_flag_errors(cli: Run) -> None:
    result = cli("layers", "--graph")
    assert result.rc == 125
    assert result.err.startswith("flag needs an argument: --graph\n")
    result = cli("layers", "-j=maybe")
    assert result.rc == 125
    assert result.err.startswith('invalid boolean value "maybe" for  -j: ')


def test_command_help_exits_125(cli: Run, roots: tuple[str, str]) -> None:
    for flag in ("--help", "-h", "-help"):
        result = cli("layers", flag)
        assert result.rc == 125
        assert result.out == "Usage: containers-storage layers [options [...]]\n\nList layers\n\nOptions:\n"
        assert re.search(rf"^  --graph, -g={re.escape(roots[0])} +Root of the storage tree$", result.err, re.M)
        assert re.search(r"^  --storage-driver, -s=vfs +Storage driver to use \(\$STORAGE_DRIVER\)$",
                         result.err, re.M)
        assert re.search(r"^  --tree, -t +Use a tree$", result.err, re.M)


def test_too_few_arguments(cli: Run) -> None:
    result = cli("create-container")
    assert result.rc == 1
    assert result.out.startswith(
        "create-container: more arguments required.\n"
        "Usage: containers-storage create-container [options [...]] parentImageNameOrID\n\n"
        "Create a new container from an image\n\nOptions:\n"
    )
    assert re.search(r"^  --volatile +Mark as volatile$", result.err, re.M)


def test_too_many_arguments(cli: Run) -> None:
    result = cli("layers", "x", "-j")
    assert result.rc == 1
    assert result.out.startswith("layers: too many arguments ([x -j]).\nUsage: containers-storage layers")


def test_flags_after_positional_are_positional(cli: Run) -> None:
    result = cli("create-layer", "parent", "-n", "x")
    assert result.rc == 1
    assert result.out.startswith("create-layer: too many arguments ([parent -n x]).\n")


def test_global_flags_after_the_command(run_raw: Run, roots: tuple[str, str], tmp_path: object) -> None:
    graph, run_root = roots
    result = run_raw("layers", "--graph", graph, "-R", run_root, "--storage-driver=vfs", "-j")
    assert (result.rc, result.out, result.err) == (0, "[]\n", "")
    result = run_raw("--graph", "/nonexistent/a", "--run", run_root, "-s", "vfs", "status", "-g", graph)
    assert result.rc == 0
    assert f"Root: {graph}\n" in result.err


def test_version(run_raw: Run) -> None:
    assert run_raw("version") == run_raw("version")  # no state
    result = run_raw("version")
    assert (result.rc, result.out, result.err) == (0, "", "Version: 1.60.0-dev\n")
    result = run_raw("version", "-j")
    assert (result.rc, result.out, result.err) == (0, '[["Version","1.60.0-dev"]]\n', "")


def test_version_matches_store() -> None:
    from containers_storage.cli.commands.store import STORAGE_VERSION
    from containers_storage.store import Store

    assert Store.version() == [("Version", STORAGE_VERSION)]


def test_rootless_rule_matches_options() -> None:
    from containers_storage.cli.main import _is_rootless
    from containers_storage.options import is_rootless

    assert _is_rootless() == is_rootless()


def test_version_startup_is_lean() -> None:
    code = (
        "import sys\n"
        "from containers_storage.cli.main import main\n"
        "rc = main(['version'])\n"
        "heavy = sorted(m for m in sys.modules if m in ('msgspec', 'orjson', 'tomllib', 'logging')\n"
        "               or m.startswith(('containers_storage.store', 'containers_storage.drivers',\n"
        "                                'containers_storage.records', 'containers_storage.options')))\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "0 []\n"
    assert proc.stderr == "Version: 1.60.0-dev\n"


def test_python_dash_m(tmp_path: object) -> None:
    proc = subprocess.run([sys.executable, "-m", "containers_storage", "version", "-j"],
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, '[["Version","1.60.0-dev"]]\n')


def test_debug_logs_in_logrus_format(cli: Run, roots: tuple[str, str]) -> None:
    result = cli("--debug", "layers")
    assert result.rc == 0
    lines = result.err.splitlines()
    assert lines, "debug output expected"
    pattern = re.compile(r'^time="[0-9T:+-]+Z?[0-9:]*" level=(debug|info|warning|error) msg=.*$')
    assert all(pattern.match(line) for line in lines), lines
    assert f'level=debug msg="Root: {roots[0]}"' in result.err
    assert 'level=debug msg="Driver Name: vfs"' in result.err


def test_debug_false_after_debug_is_quiet(cli: Run) -> None:
    result = cli("--debug", "layers", "--debug=false")
    assert (result.rc, result.err) == (0, "")
    result = cli("-D", "-D=false", "create-layer")
    assert result.rc == 0 and result.err == ""


def test_store_open_failure(run_raw: Run, tmp_path: object) -> None:
    result = run_raw("--graph", "/dev/null/g", "--run", "/dev/null/r", "-s", "vfs", "layers")
    assert result.rc == 1
    assert result.out.startswith("error initializing: ")


def test_table_is_consistent() -> None:
    seen: set[str] = set()
    for entry in COMMANDS:
        for name in entry.names:
            assert name not in seen
            seen.add(name)
            assert find_command(name) is entry
        assert entry.max_args < 0 or entry.max_args >= entry.min_args
        entry.load()  # the module and attribute exist
    for name in ("createlayer", "umount", "getnames", "removenames", "setimagedata"):
        assert find_command(name) is not None
    json.dumps([entry.names for entry in COMMANDS])
