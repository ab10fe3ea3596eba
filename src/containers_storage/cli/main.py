"""``containers-storage``: global flags, the command table, and errors turned into exit codes.

The table below is all that is loaded at start-up; a command's module (its flags and its
action) is imported only when that command runs, and the store only when the action needs it.

Exit codes: 0 success; 1 command failure, missing object, store initialisation failure or a
wrong number of arguments; 125 a bad option after the command or ``COMMAND --help``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import IO, TYPE_CHECKING, NamedTuple

from ..errors import StorageError
from .context import Action, CommandError, Context, error_text, go_list
from .flags import Flag, FlagError, FlagSet, FlagValue, HelpRequested, bool_flag, list_flag, string_flag

if TYPE_CHECKING:
    from ..options import StoreOptions
    from ..store import Store

PROG = "containers-storage"


class CommandEntry(NamedTuple):
    """A row of the command table; ``target`` is ``"module:attribute"`` under ``cli.commands``."""

    names: tuple[str, ...]
    usage: str
    options_help: str
    min_args: int
    max_args: int  # -1: no limit
    target: str

    def load(self) -> Action:
        module_name, _, attribute = self.target.partition(":")
        module = import_module(f"{__package__}.commands.{module_name}")
        action = getattr(module, attribute)
        assert isinstance(action, Action)
        return action


def _c(names: str, usage: str, options_help: str, min_args: int, max_args: int, target: str) -> CommandEntry:
    return CommandEntry(tuple(names.split()), usage, options_help, min_args, max_args, target)


_ANY = -1
_OPTS = "[options [...]]"

# In upstream's order, which is the order of `containers-storage --help`.
COMMANDS: tuple[CommandEntry, ...] = (
    _c("check", "Check storage consistency", "", 0, 0, "check:check"),
    _c("config", "Print storage library configuration as JSON", "[configurationFile]", 0, 1,
       "store:config"),
    _c("container", "Examine a container", f"{_OPTS} containerNameOrID [...]", 1, _ANY,
       "containers:container"),
    _c("list-container-data listcontainerdata", "List data items that are attached to an container",
       f"{_OPTS} containerNameOrID", 1, 1, "containers:list_container_data"),
    _c("get-container-data getcontainerdata", "Get data that is attached to an container",
       f"{_OPTS} containerNameOrID dataName", 2, 2, "containers:get_container_data"),
    _c("get-container-data-size getcontainerdatasize", "Get size of data that is attached to an container",
       f"{_OPTS} containerNameOrID dataName", 2, 2, "containers:get_container_data_size"),
    _c("get-container-data-digest getcontainerdatadigest",
       "Get digest of data that is attached to an container",
       f"{_OPTS} containerNameOrID dataName", 2, 2, "containers:get_container_data_digest"),
    _c("set-container-data setcontainerdata", "Set data that is attached to an container",
       f"{_OPTS} containerNameOrID dataName", 2, 2, "containers:set_container_data"),
    _c("get-container-dir getcontainerdir", "Find the container's associated data directory",
       f"{_OPTS} containerNameOrID", 1, 1, "containers:get_container_dir"),
    _c("get-container-run-dir getcontainerrundir", "Find the container's associated runtime directory",
       f"{_OPTS} containerNameOrID", 1, 1, "containers:get_container_run_dir"),
    _c("container-parent-owners", "Compute the set of unmapped parent UIDs and GIDs of the container",
       f"{_OPTS} containerNameOrID [...]", 1, _ANY, "containers:container_parent_owners"),
    _c("containers", "List containers", _OPTS, 0, 0, "containers:containers"),
    _c("create-layer createlayer", "Create a new layer", f"{_OPTS} [parentLayerNameOrID]", 0, 1,
       "layers:create_layer"),
    _c("import-layer importlayer", "Import a new layer", f"{_OPTS} [parentLayerNameOrID]", 0, 1,
       "layerdata:import_layer"),
    _c("create-image createimage", "Create a new image using layers", f"{_OPTS} topLayerNameOrID", 0, 1,
       "images:create_image"),
    _c("create-container createcontainer", "Create a new container from an image",
       f"{_OPTS} parentImageNameOrID", 1, 1, "containers:create_container"),
    _c("delete", "Delete a layer or image or container, with no safety checks",
       "[LayerOrImageOrContainerNameOrID [...]]", 1, _ANY, "objects:delete"),
    _c("delete-layer deletelayer", "Delete a layer, with safety checks", "[LayerNameOrID [...]]", 1, _ANY,
       "layers:delete_layer"),
    _c("delete-image deleteimage", "Delete an image, with safety checks", "[ImageNameOrID [...]]", 1, _ANY,
       "images:delete_image"),
    _c("delete-container deletecontainer", "Delete a container, with safety checks",
       "[ContainerNameOrID [...]]", 1, _ANY, "containers:delete_container"),
    _c("changes", "Compare two layers", f"{_OPTS} layerNameOrID [referenceLayerNameOrID]", 1, 2,
       "layerdata:changes"),
    _c("diffsize diff-size", "Compare two layers", f"{_OPTS} layerNameOrID [referenceLayerNameOrID]", 1, 2,
       "layerdata:diffsize"),
    _c("diff", "Compare two layers", f"{_OPTS} layerNameOrID [referenceLayerNameOrID]", 1, 2,
       "layerdata:diff"),
    _c("applydiff apply-diff", "Apply a diff to a layer", f"{_OPTS} layerNameOrID [referenceLayerNameOrID]",
       1, 2, "layerdata:applydiff"),
    _c("exists", "Check if a layer or image or container exists",
       "[LayerOrImageOrContainerNameOrID [...]]", 1, _ANY, "objects:exists"),
    _c("gc", "Perform garbage collection", "", 0, 0, "store:gc"),
    _c("image", "Examine an image", f"{_OPTS} imageNameOrID [...]", 1, _ANY, "images:image"),
    _c("list-image-data listimagedata", "List data items that are attached to an image",
       f"{_OPTS} imageNameOrID", 1, 1, "images:list_image_data"),
    _c("get-image-data getimagedata", "Get data that is attached to an image",
       f"{_OPTS} imageNameOrID dataName", 2, 2, "images:get_image_data"),
    _c("get-image-data-size getimagedatasize", "Get size of data that is attached to an image",
       f"{_OPTS} imageNameOrID dataName", 2, 2, "images:get_image_data_size"),
    _c("get-image-data-digest getimagedatadigest", "Get digest of data that is attached to an image",
       f"{_OPTS} imageNameOrID dataName", 2, 2, "images:get_image_data_digest"),
    _c("set-image-data setimagedata", "Set data that is attached to an image (with sometimes wrong digest)",
       f"{_OPTS} imageNameOrID dataName", 2, 2, "images:set_image_data"),
    _c("get-image-dir", "Find the image's associated data directory", f"{_OPTS} imageNameOrID", 1, 1,
       "images:get_image_dir"),
    _c("get-image-run-dir", "Find the image's associated runtime directory", f"{_OPTS} imageNameOrID",
       1, 1, "images:get_image_run_dir"),
    _c("images", "List images", _OPTS, 0, 0, "images:images"),
    _c("images-by-digest", "List images by digest", f"{_OPTS} DIGEST", 1, 1, "images:images_by_digest"),
    _c("layer", "Examine a layer", f"{_OPTS} layerNameOrID [...]", 1, _ANY, "layers:layer"),
    _c("layer-parent-owners", "Compute the set of unmapped parent UIDs and GIDs of the layer",
       f"{_OPTS} layerNameOrID [...]", 1, _ANY, "layers:layer_parent_owners"),
    _c("list-layer-data listlayerdata", "List data items that are attached to a layer",
       f"{_OPTS} layerNameOrID", 1, 1, "layers:list_layer_data"),
    _c("get-layer-data getlayerdata", "Get data that is attached to a layer", f"{_OPTS} layerID dataName",
       2, 2, "layers:get_layer_data"),
    _c("set-layer-data setlayerdata", "Set data that is attached to a layer", f"{_OPTS} layerID dataName",
       2, 2, "layers:set_layer_data"),
    _c("layers", "List layers", _OPTS, 0, 0, "layers:layers"),
    _c("metadata", "Retrieve layer, image, or container metadata", "[LayerOrImageOrContainerNameOrID [...]]",
       1, _ANY, "objects:metadata"),
    _c("set-metadata setmetadata", "Set layer, image, or container metadata",
       f"{_OPTS} layerOrImageOrContainerNameOrID", 1, 1, "objects:set_metadata"),
    _c("mount", "Mount a layer or container", f"{_OPTS} LayerOrContainerNameOrID", 1, _ANY,
       "objects:mount"),
    _c("unmount umount", "Unmount an image, layer or container", "LayerOrContainerNameOrID", 1, _ANY,
       "objects:unmount"),
    _c("mounted", "Check if a file system is mounted", "LayerOrContainerNameOrID", 1, _ANY,
       "objects:mounted"),
    _c("get-names getnames", "Get layer, image, or container name or names",
       f"{_OPTS} imageOrContainerNameOrID", 1, 1, "objects:get_names"),
    _c("add-names addnames", "Add layer, image, or container name or names",
       f"{_OPTS} imageOrContainerNameOrID", 1, _ANY, "objects:add_names"),
    _c("remove-names removenames", "Remove layer, image, or container name or names",
       f"{_OPTS} imageOrContainerNameOrID", 1, _ANY, "objects:remove_names"),
    _c("set-names setnames", "Set layer, image, or container name or names",
       f"{_OPTS} imageOrContainerNameOrID", 1, _ANY, "objects:set_names"),
    _c("shutdown", "Shut down layer storage", "", 0, 0, "store:shutdown"),
    _c("status", "Check on graph driver status", "", 0, 0, "store:status"),
    _c("version", "Return containers-storage version information", "", 0, 0, "store:version"),
    _c("wipe", "Wipe all layers, images, and containers", "", 0, 0, "store:wipe"),
)


def find_command(name: str) -> CommandEntry | None:
    for entry in COMMANDS:
        if name in entry.names:
            return entry
    return None


# -- global options

_STORE_DESTS = ("graph", "run", "driver", "storage_opt")


def global_flags() -> tuple[Flag, ...]:
    rootless = _is_rootless()
    return (
        string_flag(("-run", "R"), "run", "Root of the runtime state tree"),
        string_flag(("-graph", "g"), "graph", "Root of the storage tree"),
        string_flag(("-image-store",), "image_store", "Root of the separate image store"),
        bool_flag(("-transient-store",), "transient_store", "Transient store"),
        string_flag(("-storage-driver", "s"), "driver", "Storage driver to use ($STORAGE_DRIVER)"),
        list_flag(("-storage-opt",), "storage_opt", "Set storage driver options ($STORAGE_OPTS)"),
        bool_flag(("-debug", "D"), "debug", "Print debugging information"),
        bool_flag(("-unshare", "U"), "unshare",
                  f"Run in a user namespace (default {'true' if rootless else 'false'})", rootless),
    )


def _is_rootless() -> bool:
    """``options.is_rootless()``, repeated so that start-up does not import the options module."""
    return os.geteuid() != 0 and not os.environ.get("_CONTAINERS_USERNS_CONFIGURED")


_HELP_FLAG = bool_flag(("#help", "-help"), "help", "Print usage")


class _Streams(NamedTuple):
    stdout: IO[str]
    stderr: IO[str]
    stdin: IO[str]


def _main_usage(flags: FlagSet, streams: _Streams, table_to: IO[str] | None = None) -> None:
    out = streams.stdout
    out.write(f"Usage: {PROG} command [options [...]]\n\nCommands:\n\n")
    for entry in COMMANDS:
        out.write(f"  {entry.names[0]:<30}{entry.usage}\n")
    out.write("\nOptions:\n")
    out.flush()
    (table_to or streams.stderr).write(flags.defaults_text())


def _command_usage(cmd: str, entry: CommandEntry, flags: FlagSet, streams: _Streams) -> None:
    streams.stdout.write(f"Usage: {PROG} {cmd} {entry.options_help}\n\n{entry.usage}\n\nOptions:\n")
    streams.stdout.flush()
    streams.stderr.write(flags.defaults_text(_effective_store_defaults(flags.values)))


def _store_flags_given(values: dict[str, FlagValue]) -> bool:
    return any(values.get(dest) for dest in _STORE_DESTS)


def _effective_store_defaults(values: dict[str, FlagValue]) -> dict[str, FlagValue] | None:
    """When no store option was given, --help shows the default configuration's values."""
    if _store_flags_given(values):
        return None
    try:
        from ..options import default_store_options

        defaults = default_store_options()
    except Exception:  # help must work even with a broken storage.conf
        return None
    return {
        "graph": defaults.graph_root,
        "run": defaults.run_root,
        "driver": defaults.driver_name,
        "storage_opt": list(defaults.driver_options),
        "image_store": defaults.image_store,
        "transient_store": defaults.transient_store,
    }


def _store_options(values: dict[str, FlagValue]) -> StoreOptions:
    from ..options import cli_store_options

    def text(dest: str) -> str:
        value = values[dest]
        assert isinstance(value, str)
        return value

    storage_opts = values["storage_opt"]
    assert isinstance(storage_opts, list)
    return cli_store_options(
        graph=text("graph"),
        run=text("run"),
        driver=text("driver"),
        storage_opts=list(storage_opts),
        image_store=text("image_store"),
        transient_store=bool(values["transient_store"]),
    )


def _open_store(values: dict[str, FlagValue], with_driver: bool = True) -> Store:
    from ..store import Store

    store = Store.open(_store_options(values))
    store.free()  # as upstream: no in-process cache entry outlives the command
    if with_driver or store.graph_options:
        # Set it up now, so that its errors (bad driver options above all) read "error
        # initializing: ..." as upstream's do; only option-less record listings skip it.
        store.driver  # noqa: B018
    return store


def run() -> None:
    """Console-script entry point: a one-shot process, so skip the cleanup it doesn't need.

    The cyclic garbage collector only slows down loading big record files
    (nothing here builds cycles worth collecting), and tearing down ten
    thousand records at exit costs more than the listing itself.  Output is
    flushed by ``main`` before the process leaves through ``os._exit``.
    """
    import gc

    gc.disable()
    status = main()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with *argv* (default ``sys.argv[1:]``) and return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    streams = _Streams(sys.stdout, sys.stderr, sys.stdin)
    try:
        return _run(arguments, streams)
    except BrokenPipeError:
        # Output was cut short (e.g. piped into `head`): point stdout at /dev/null so that the
        # final flush at interpreter exit does not complain (the recipe of Python's docs).
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, streams.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    finally:
        for stream in (streams.stdout, streams.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def _run(arguments: list[str], streams: _Streams) -> int:
    values: dict[str, FlagValue] = {}
    if not arguments:
        _main_usage(FlagSet(PROG, global_flags(), values), streams)
        return 1
    gflags = FlagSet(PROG, (*global_flags(), _HELP_FLAG), values)
    try:
        gflags.parse(arguments)
    except HelpRequested:
        _main_usage(gflags, streams)
        streams.stdout.write("flag: help requested while parsing arguments (1)\n")
        _main_usage(gflags, streams)
        return 1
    except FlagError as exc:
        streams.stderr.write(f"{exc}\nSee '{PROG} --help'.\n")
        streams.stdout.write(f"{exc} while parsing arguments (1)\n")
        _main_usage(gflags, streams)
        return 1
    if values["help"]:
        _main_usage(gflags, streams, table_to=streams.stdout)
        return 0
    if not gflags.args:
        _main_usage(gflags, streams)
        return 1

    cmd, rest = gflags.args[0], gflags.args[1:]
    entry = find_command(cmd)
    if entry is None:
        streams.stdout.write(f"{cmd}: unrecognized command.\n")
        return 1
    action = entry.load()
    cflags = FlagSet(cmd, (*global_flags(), *action.flags), values)
    try:
        args = cflags.parse(rest)
    except HelpRequested:
        _command_usage(cmd, entry, cflags, streams)
        return 125
    except FlagError as exc:
        streams.stderr.write(f"{exc}\nSee '{PROG} {cmd} --help'.\n")
        return 125
    if entry.min_args and len(args) < entry.min_args:
        streams.stdout.write(f"{cmd}: more arguments required.\n")
        _command_usage(cmd, entry, cflags, streams)
        return 1
    if entry.max_args >= 0 and len(args) > entry.max_args:
        streams.stdout.write(f"{cmd}: too many arguments ({go_list(args)}).\n")
        _command_usage(cmd, entry, cflags, streams)
        return 1

    debug = bool(values["debug"])
    from .. import _log

    _log.debug_off = not debug  # without --debug, debug messages go nowhere: skip them early
    if debug or "logging" in sys.modules:  # already paid for: (re)configure now
        from .logrus import configure_logging

        configure_logging(streams.stderr, debug)
    else:
        # Most runs log nothing: configure logging only if the library asks for a logger.
        def configure_quietly(_logger: object) -> None:
            from .logrus import configure_logging

            configure_logging(streams.stderr, False)

        _log.on_first_use = configure_quietly
    store: Store | None = None
    if action.store:
        try:
            store = _open_store(values, action.driver)
        except Exception as exc:  # any failure to open is reported the same way
            streams.stdout.write(f"error initializing: {error_text(exc)}\n")
            return 1
        _log_store(store)
    ctx = Context(cmd, values, streams.stdout, streams.stderr, streams.stdin, store)
    try:
        return action.run(ctx, args)
    except (CommandError, StorageError, OSError) as exc:
        streams.stdout.flush()
        streams.stderr.write(f"{error_text(exc)}\n")
        return 1


def _log_store(store: Store) -> None:
    if "logging" not in sys.modules:
        return  # nobody configured logging, so debug output is off
    import logging

    log = logging.getLogger("containers_storage")
    if log.isEnabledFor(logging.DEBUG):
        log.debug("Root: %s", store.graph_root)
        log.debug("Run Root: %s", store.run_root)
        log.debug("Driver Name: %s", store.graph_driver_name)
        log.debug("Driver Options: %s", go_list(list(store.graph_options)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
