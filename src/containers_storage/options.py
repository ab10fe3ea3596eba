"""Store options: storage.conf (TOML), environment variables, root and rootless defaults.

This module reproduces upstream's ``types`` package (config.md):

* :func:`default_config_file` — which storage.conf applies to this process;
* :func:`load_config_file` — parse one storage.conf into a :class:`StoreOptions`;
* :func:`default_store_options` — the whole default-loading sequence (system file,
  rootless per-user defaults, the selected file, ``$UID``/``$VAR`` expansion);
* :func:`cli_store_options` — the ``containers-storage`` command-line rule;
* :func:`parse_driver_option` / :func:`get_mount_options` — helpers for drivers.

Nothing is cached: the CLI computes the defaults once, library users call again to
pick up a changed file.  ``tomllib`` is imported only when a file is parsed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _log
from .errors import ConfigError

if TYPE_CHECKING:  # options stays cheap to import: records only for annotations
    from .records import IDMap


# Built-in paths (Linux).  Module attributes so that tests and packagers can redirect them.
DEFAULT_RUN_ROOT = "/run/containers/storage"
DEFAULT_GRAPH_ROOT = "/var/lib/containers/storage"
SYSTEM_CONFIG_FILE = "/usr/share/containers/storage.conf"
OVERRIDE_CONFIG_FILE = "/etc/containers/storage.conf"
RUN_USER_DIR = "/run/user"

AUTO_USERNS_MIN_SIZE = 1024
AUTO_USERNS_MAX_SIZE = 65536
ROOT_AUTO_USERNS_USER = "containers"

STORAGE_CONF_ENV = "CONTAINERS_STORAGE_CONF"
USERNS_CONFIGURED_ENV = "_CONTAINERS_USERNS_CONFIGURED"
ROOTLESS_UID_ENV = "_CONTAINERS_ROOTLESS_UID"

_ROOTLESS_DRIVERS = frozenset({"btrfs", "overlay", "overlay2", "vfs"})

# Set by set_default_config_file_path(); None = not set programmatically.
_config_file_override: str | None = None


# --------------------------------------------------------------------------
# StoreOptions


class StoreOptions:
    """Options for opening a store (upstream ``types.StoreOptions``).

    A plain class rather than a dataclass: the CLI builds one on every run and
    the dataclasses machinery costs more start-up time than the whole listing.
    """

    __slots__ = ("auto_userns_max_size", "auto_userns_min_size", "disable_volatile", "driver_name",
                 "driver_options", "driver_priority", "durable", "gidmap", "graph_root", "image_store",
                 "pull_options", "root_auto_userns_user", "rootless_storage_path", "run_root",
                 "transient_store", "uidmap")

    def __init__(self, run_root: str = "", graph_root: str = "", image_store: str = "",
                 rootless_storage_path: str = "", driver_name: str = "",
                 driver_priority: list[str] | None = None, driver_options: list[str] | None = None,
                 uidmap: list[IDMap] | None = None, gidmap: list[IDMap] | None = None,
                 root_auto_userns_user: str = "", auto_userns_min_size: int = AUTO_USERNS_MIN_SIZE,
                 auto_userns_max_size: int = AUTO_USERNS_MAX_SIZE, disable_volatile: bool = False,
                 transient_store: bool = False, pull_options: dict[str, str] | None = None,
                 durable: bool = True) -> None:
        self.run_root = run_root
        self.graph_root = graph_root
        self.image_store = image_store
        self.rootless_storage_path = rootless_storage_path
        self.driver_name = driver_name
        self.driver_priority: list[str] = driver_priority if driver_priority is not None else []
        self.driver_options: list[str] = driver_options if driver_options is not None else []
        self.uidmap: list[IDMap] = uidmap if uidmap is not None else []
        self.gidmap: list[IDMap] = gidmap if gidmap is not None else []
        self.root_auto_userns_user = root_auto_userns_user
        self.auto_userns_min_size = auto_userns_min_size
        self.auto_userns_max_size = auto_userns_max_size
        self.disable_volatile = disable_volatile
        self.transient_store = transient_store
        self.pull_options: dict[str, str] = pull_options if pull_options is not None else {}
        # Ours, not upstream's: False skips every fsync/syncfs (throw-away stores, CI caches).
        # Not in storage.conf, which the Go tools also read; see default_store_options().
        self.durable = durable

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreOptions) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"StoreOptions({fields})"

    def copy(self) -> StoreOptions:
        """A copy whose lists and dicts are not shared with this one."""
        return StoreOptions(
            run_root=self.run_root,
            graph_root=self.graph_root,
            image_store=self.image_store,
            rootless_storage_path=self.rootless_storage_path,
            driver_name=self.driver_name,
            driver_priority=list(self.driver_priority),
            driver_options=list(self.driver_options),
            uidmap=list(self.uidmap),
            gidmap=list(self.gidmap),
            root_auto_userns_user=self.root_auto_userns_user,
            auto_userns_min_size=self.auto_userns_min_size,
            auto_userns_max_size=self.auto_userns_max_size,
            disable_volatile=self.disable_volatile,
            transient_store=self.transient_store,
            pull_options=dict(self.pull_options),
            durable=self.durable,
        )

    def to_config_json(self) -> dict[str, Any]:
        """The object the ``config`` command prints, in Go's field order and omission rules.

        Upstream's struct leaves the user-namespace sizes at 0 until the store applies
        the 1024/65536 defaults, so they are omitted here when they equal those defaults.
        ``RootlessStoragePath`` is always present; ``PullOptions`` is ``null`` when empty.
        """
        out: dict[str, Any] = {}
        if self.run_root:
            out["runroot"] = self.run_root
        if self.graph_root:
            out["root"] = self.graph_root
        if self.image_store:
            out["imagestore"] = self.image_store
        out["RootlessStoragePath"] = self.rootless_storage_path
        if self.driver_name:
            out["driver"] = self.driver_name
        if self.driver_priority:
            out["driver-priority"] = list(self.driver_priority)
        if self.driver_options:
            out["driver-options"] = list(self.driver_options)
        if self.uidmap:
            out["uidmap"] = [m.to_json() for m in self.uidmap]
        if self.gidmap:
            out["gidmap"] = [m.to_json() for m in self.gidmap]
        if self.root_auto_userns_user:
            out["root_auto_ns_user"] = self.root_auto_userns_user
        if self.auto_userns_min_size and self.auto_userns_min_size != AUTO_USERNS_MIN_SIZE:
            out["auto_userns_min_size"] = self.auto_userns_min_size
        if self.auto_userns_max_size and self.auto_userns_max_size != AUTO_USERNS_MAX_SIZE:
            out["auto_userns_max_size"] = self.auto_userns_max_size
        out["PullOptions"] = (
            {k: self.pull_options[k] for k in sorted(self.pull_options)} if self.pull_options else None
        )
        if self.disable_volatile:
            out["disable-volatile"] = True
        if self.transient_store:
            out["transient_store"] = True
        return out


# --------------------------------------------------------------------------
# Process identity


def is_rootless() -> bool:
    """True when this process needs a user namespace: euid ≠ 0 and not already inside one
    set up by the re-exec (``_CONTAINERS_USERNS_CONFIGURED``)."""
    return os.geteuid() != 0 and not os.environ.get(USERNS_CONFIGURED_ENV)


def rootless_uid() -> int:
    """The user's UID outside the user namespace (``_CONTAINERS_ROOTLESS_UID`` or the euid)."""
    value = os.environ.get(ROOTLESS_UID_ENV, "")
    if value:
        try:
            return int(value)
        except ValueError:
            return 0
    return os.geteuid()


def use_per_user_storage() -> bool:
    """Whether the per-user (rootless) defaults apply.

    As upstream: the process is rootless or runs in a configured user namespace, and the
    original UID is not 0 — so nested engines started as real root keep system paths.
    """
    in_userns = os.geteuid() != 0 or bool(os.environ.get(USERNS_CONFIGURED_ENV))
    return in_userns and rootless_uid() != 0


def _home_dir() -> str:
    home = os.environ.get("HOME", "")
    if home:
        return home
    try:
        import pwd

        return pwd.getpwuid(rootless_uid()).pw_dir
    except (KeyError, ImportError):
        return ""


# --------------------------------------------------------------------------
# Helpers


def _go_error_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _os_error(op: str, path: str, exc: OSError) -> ConfigError:
    return ConfigError(sentinel=f"{op} {path}: {_go_error_text(exc)}")


_SHELL_SPECIAL = frozenset("*#$@!?-0123456789")


def _shell_name(s: str) -> tuple[str, int]:
    # The name after a "$" and how many characters it spans (Go os.Expand rules).
    if s[0] == "{":
        if len(s) > 2 and s[1] in _SHELL_SPECIAL and s[2] == "}":
            return s[1], 3
        end = s.find("}", 1)
        if end == 1:
            return "", 2  # "${}": bad syntax, eaten
        if end < 0:
            return "", 1  # "${" without "}": bad syntax, eaten
        return s[1:end], end + 1
    if s[0] in _SHELL_SPECIAL:
        return s[0], 1
    i = 0
    while i < len(s) and (s[i].isascii() and (s[i].isalnum() or s[i] == "_")):
        i += 1
    return s[:i], i


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``$VAR`` and ``${VAR}`` expansion with Go's ``os.ExpandEnv`` rules (unset → empty)."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    i = 0
    start = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            out.append(text[start:i])
            name, width = _shell_name(text[i + 1 :])
            if not name and width > 0:
                pass  # invalid syntax: the characters are dropped
            elif not name:
                out.append("$")
            else:
                out.append(env.get(name, ""))
            i += 1 + width
            start = i
        else:
            i += 1
    out.append(text[start:])
    return "".join(out)


def expand_env_path(path: str, uid: int, environ: Mapping[str, str] | None = None) -> str:
    """``$UID`` → *uid*, then environment expansion, then symlinks resolved (else cleaned)."""
    path = expand_env(path.replace("$UID", str(uid)), environ)
    try:
        return os.path.realpath(path, strict=True)
    except (OSError, ValueError):
        return os.path.normpath(path)


def parse_driver_option(opt: str) -> tuple[str, str]:
    """Split ``prefix.key=value`` into (lower-cased trimmed key, trimmed value)."""
    key, sep, value = opt.partition("=")
    if not sep:
        raise ConfigError(sentinel=f"unable to parse key/value option: {opt}")
    return key.strip().lower(), value.strip()


def get_mount_options(driver: str, driver_options: list[str]) -> list[str]:
    """The default mount options: the first ``.mountopt``/``<driver>.mountopt`` value, comma-split."""
    wanted = (".mountopt", f"{driver}.mountopt")
    for option in driver_options:
        key, value = parse_driver_option(option)
        if key in wanted:
            return value.split(",")
    return []


def _split_storage_opts(value: str) -> list[str]:
    opts = value.split(",")
    return [] if opts == [""] else opts


# --------------------------------------------------------------------------
# storage.conf decoding

# Field kinds: "str", "strbool" (string bool; a TOML bool is accepted too), "bool",
# "uint32", "strlist", "strmap", "mode" (file mode), or a nested schema dict.
_Schema = dict[str, Any]

_OVERLAY_TABLE: _Schema = {
    "ignore_chown_errors": "strbool",
    "mountopt": "str",
    "mount_program": "str",
    "size": "str",
    "inodes": "str",
    "skip_mount_home": "strbool",
    "use_composefs": "strbool",
    "force_mask": "maskstr",
}

_OPTIONS_TABLE: _Schema = {
    "additionalimagestores": "strlist",
    "imagestore": "str",
    "additionallayerstores": "strlist",
    "size": "str",
    "ignore_chown_errors": "strbool",
    "use_composefs": "strbool",
    "force_mask": "mode",
    "root-auto-userns-user": "str",
    "auto-userns-min-size": "uint32",
    "auto-userns-max-size": "uint32",
    "remap-uids": "str",
    "remap-gids": "str",
    "remap-user": "str",
    "remap-group": "str",
    "skip_mount_home": "strbool",
    "mount_program": "str",
    "mountopt": "str",
    "pull_options": "strmap",
    "disable-volatile": "bool",
    "aufs": {"mountopt": "str"},
    "btrfs": {"min_space": "str", "size": "str"},
    "thinpool": {},
    "overlay": _OVERLAY_TABLE,
    "vfs": {"ignore_chown_errors": "strbool"},
    "zfs": {"mountopt": "str", "fsname": "str", "size": "str"},
}

_CONFIG_SCHEMA: _Schema = {
    "storage": {
        "driver": "str",
        "driver_priority": "strlist",
        "runroot": "str",
        "imagestore": "str",
        "graphroot": "str",
        "rootless_storage_path": "str",
        "transient_store": "bool",
        "options": _OPTIONS_TABLE,
    }
}

_TOML_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


def _toml_type(value: object) -> str:
    return _TOML_TYPE_NAMES.get(type(value), type(value).__name__)


def _mode_value(value: object) -> int | None:
    """A force_mask value as a mode: TOML integer, or "shared"/"private"/octal string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 0o7777 else None
    if isinstance(value, str):
        if value == "shared":
            return 0o755
        if value == "private":
            return 0o700
        if re.fullmatch(r"[0-7]+", value):
            mode = int(value, 8)
            return mode if mode <= 0o7777 else None
    return None


class _Decoder:
    """Checks a parsed TOML document against the schema, like Go's typed decoding."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.undecoded: list[str] = []

    def fail(self, key: str, value: object, want: str) -> ConfigError:
        return ConfigError(
            sentinel=f'{self.path}: key "{key}": incompatible types: '
            f"TOML value has type {_toml_type(value)}; destination has type {want}"
        )

    def table(self, data: dict[str, Any], schema: _Schema, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = f"{prefix}{key}"
            kind = schema.get(key)
            if kind is None:
                self._collect_undecoded(name, value)
                continue
            out[key] = self.value(name, value, kind)
        return out

    def _collect_undecoded(self, name: str, value: object) -> None:
        self.undecoded.append(name)
        if isinstance(value, dict):
            for key, sub in value.items():
                self._collect_undecoded(f"{name}.{key}", sub)

    def value(self, name: str, value: object, kind: Any) -> Any:
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise self.fail(name, value, "table")
            return self.table(value, kind, f"{name}.")
        if kind == "str":
            if not isinstance(value, str):
                raise self.fail(name, value, "string")
            return value
        if kind == "strbool":
            if isinstance(value, bool):
                return "true" if value else "false"
            if not isinstance(value, str):
                raise self.fail(name, value, "string")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(name, value, "bool")
            return value
        if kind == "uint32":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(name, value, "uint32")
            if not 0 <= value <= 0xFFFFFFFF:
                raise ConfigError(
                    sentinel=f'{self.path}: key "{name}": value {value} is out of range for uint32'
                )
            return value
        if kind == "strlist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(name, value, "[]string")
            return list(value)
        if kind == "strmap":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.fail(name, value, "map[string]string")
            return dict(value)
        if kind == "mode":
            mode = _mode_value(value)
            if mode is None:
                raise ConfigError(sentinel=f'{self.path}: key "{name}": invalid file mode {value!r}')
            return mode
        if kind == "maskstr":
            if isinstance(value, int) and not isinstance(value, bool):
                if _mode_value(value) is None:
                    raise ConfigError(sentinel=f'{self.path}: key "{name}": invalid file mode {value!r}')
                return f"{value:o}"
            if not isinstance(value, str):
                raise self.fail(name, value, "string")
            return value
        raise AssertionError(f"unknown schema kind {kind!r}")  # pragma: no cover


def _driver_table_options(driver: str, opts: dict[str, Any]) -> list[str]:
    """Options from the per-driver tables (with [storage.options] fallbacks), upstream order."""
    out: list[str] = []

    def pick(table: str, key: str, fallback: bool = True) -> str:
        value = str(opts.get(table, {}).get(key, ""))
        if not value and fallback:
            raw = opts.get(key, "")
            value = f"{raw:o}" if key == "force_mask" and isinstance(raw, int) and raw else str(raw or "")
        return value

    if driver == "aufs":
        value = pick("aufs", "mountopt")
        if value:
            out.append(f"{driver}.mountopt={value}")
    elif driver == "btrfs":
        min_space = pick("btrfs", "min_space", fallback=False)
        if min_space:
            return [f"{driver}.min_space={min_space}"]
        value = pick("btrfs", "size")
        if value:
            out.append(f"{driver}.size={value}")
    elif driver in ("overlay", "overlay2"):
        for key, fallback in (
            ("ignore_chown_errors", True),
            ("mount_program", True),
            ("mountopt", True),
            ("size", True),
            ("inodes", False),
            ("skip_mount_home", True),
            ("force_mask", True),
            ("use_composefs", False),
        ):
            value = pick("overlay", key, fallback)
            if value:
                out.append(f"{driver}.{key}={value}")
    elif driver == "vfs":
        value = pick("vfs", "ignore_chown_errors")
        if value:
            out.append(f"{driver}.ignore_chown_errors={value}")
    elif driver == "zfs":
        for key, fallback in (("fsname", False), ("mountopt", True), ("size", True)):
            value = pick("zfs", key, fallback)
            if value:
                out.append(f"{driver}.{key}={value}")
    return out


def _go_quote_list(items: list[str]) -> str:
    from .idtools import go_quote

    return "[" + " ".join(go_quote(i) for i in items) + "]"


def load_config_file(
    path: str,
    opts: StoreOptions | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> StoreOptions:
    """Parse the storage.conf at *path* into new options (upstream ``ReloadConfigurationFile``).

    As upstream, the result starts from empty options — *opts* is not merged and not
    modified.  ``STORAGE_DRIVER`` (if non-empty) replaces the driver and ``STORAGE_OPTS``
    (if set, even empty) replaces the driver option list.  Unknown keys are logged as a
    warning; unreadable files, TOML syntax errors and wrongly typed values raise
    :class:`ConfigError` naming the file (and, for syntax errors, the line and column).
    """
    del opts  # kept for API symmetry with upstream; the options are reset
    import tomllib

    env = os.environ if environ is None else environ
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise _os_error("open", path, exc) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(sentinel=f"{path}: {exc}") from exc

    decoder = _Decoder(path)
    config = decoder.table(document, _CONFIG_SCHEMA, "")
    if decoder.undecoded:
        _log.warning('Failed to decode the keys %s from "%s"', _go_quote_list(decoder.undecoded), path)
    storage: dict[str, Any] = config.get("storage", {})
    options: dict[str, Any] = storage.get("options", {})

    result = StoreOptions()
    # The legacy [storage.options] placement uses the configured name (or STORAGE_DRIVER) as is.
    prefix: str = storage.get("driver", "")
    result.driver_name = prefix
    env_driver = env.get("STORAGE_DRIVER", "")
    if env_driver:
        prefix = env_driver
        result.driver_name = env_driver
    if result.driver_name == "overlay2":
        _log.warning("Switching default driver from overlay2 to the equivalent overlay driver")
        result.driver_name = "overlay"
    result.driver_priority = list(storage.get("driver_priority", []))
    if not result.driver_name and not result.driver_priority:
        _log.warning(
            "The storage 'driver' option should be set in %s. A driver was picked automatically.", path
        )
    result.run_root = storage.get("runroot", "")
    result.graph_root = storage.get("graphroot", "")
    result.image_store = storage.get("imagestore", "")
    result.rootless_storage_path = storage.get("rootless_storage_path", "")

    driver_options: list[str] = []
    for store in options.get("additionalimagestores", []):
        driver_options.append(f"{prefix}.imagestore={store}")
    for store in options.get("additionallayerstores", []):
        driver_options.append(f"{prefix}.additionallayerstore={store}")
    for key in ("size", "mount_program", "skip_mount_home", "ignore_chown_errors"):
        if options.get(key):
            driver_options.append(f"{prefix}.{key}={options[key]}")
    if options.get("force_mask"):
        driver_options.append(f"{prefix}.force_mask={options['force_mask']:o}")
    if options.get("mountopt"):
        driver_options.append(f"{prefix}.mountopt={options['mountopt']}")

    result.uidmap, result.gidmap = _config_id_maps(options)
    result.root_auto_userns_user = options.get("root-auto-userns-user", "")
    if options.get("auto-userns-min-size", 0) > 0:
        result.auto_userns_min_size = options["auto-userns-min-size"]
    if options.get("auto-userns-max-size", 0) > 0:
        result.auto_userns_max_size = options["auto-userns-max-size"]
    if "pull_options" in options:
        result.pull_options = dict(options["pull_options"])
    result.disable_volatile = bool(options.get("disable-volatile", False))
    result.transient_store = bool(storage.get("transient_store", False))

    driver_options.extend(_driver_table_options(result.driver_name, options))
    if "STORAGE_OPTS" in env:
        driver_options = _split_storage_opts(env["STORAGE_OPTS"])
    result.driver_options = [] if driver_options == [""] else driver_options
    return result


def _config_id_maps(options: dict[str, Any]) -> tuple[list[IDMap], list[IDMap]]:
    uid_spec: str = options.get("remap-uids", "")
    gid_spec: str = options.get("remap-gids", "")
    user: str = options.get("remap-user", "")
    group: str = options.get("remap-group", "")
    if not (uid_spec or gid_spec or user or group):
        return [], []
    from . import idtools
    from .errors import StorageError

    try:
        uidmap = idtools.parse_id_map([uid_spec], "remap-uids")
        gidmap = idtools.parse_id_map([gid_spec], "remap-gids")
        user, group = user or group, group or user
        if user and group:
            uidmap, gidmap = idtools.subid_mappings(user, group)
    except ConfigError:
        raise
    except StorageError as exc:
        raise ConfigError(sentinel=str(exc)) from exc
    return uidmap, gidmap


# --------------------------------------------------------------------------
# Which file, and the default-loading sequence


def set_default_config_file_path(path: str | None) -> None:
    """Use *path* as the configuration file (upstream ``SetDefaultConfigFilePath``); None resets."""
    global _config_file_override
    _config_file_override = path


def default_config_file() -> str:
    """The storage.conf that applies to this process (config.md §1)."""
    if _config_file_override is not None:
        return _config_file_override
    env_path = os.environ.get(STORAGE_CONF_ENV)
    if env_path is not None:
        return env_path
    if not use_per_user_storage():
        if os.path.exists(OVERRIDE_CONFIG_FILE):
            return OVERRIDE_CONFIG_FILE
        return SYSTEM_CONFIG_FILE
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    if config_home:
        return os.path.join(config_home, "containers", "storage.conf")
    home = _home_dir()
    if not home:
        raise ConfigError(sentinel="cannot determine user's homedir")
    return os.path.join(home, ".config", "containers", "storage.conf")


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _os_error("stat", path, exc) from exc
    return True


def _fill_builtin_roots(opts: StoreOptions) -> StoreOptions:
    if not opts.run_root:
        opts.run_root = DEFAULT_RUN_ROOT
    if not opts.graph_root:
        opts.graph_root = DEFAULT_GRAPH_ROOT
    return opts


def _load_memo(path: str, memo: dict[str, StoreOptions]) -> StoreOptions:
    # One parse (and one set of warnings) per file per default-loading sequence.
    if path not in memo:
        memo[path] = load_config_file(path)
    return memo[path].copy()


def system_store_options(memo: dict[str, StoreOptions] | None = None) -> StoreOptions:
    """Step 1 of config.md §1: the system-level options ("system opts")."""
    memo = {} if memo is None else memo
    explicit = _config_file_override
    if explicit is None:
        explicit = os.environ.get(STORAGE_CONF_ENV)
    if explicit is not None:
        if not _exists(explicit):
            raise ConfigError(sentinel=f"stat {explicit}: no such file or directory")
        return _fill_builtin_roots(_load_memo(explicit, memo))
    override = OVERRIDE_CONFIG_FILE
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    if config_home:
        home_file = os.path.join(config_home, "containers", "storage.conf")
        if _exists(home_file):
            override = home_file
    if _exists(override):
        return _fill_builtin_roots(_load_memo(override, memo))
    if _exists(SYSTEM_CONFIG_FILE):
        return _fill_builtin_roots(_load_memo(SYSTEM_CONFIG_FILE, memo))
    return _fill_builtin_roots(StoreOptions())


def _owned_private_dir(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and (st.st_mode & 0o722) == 0o700


def rootless_runtime_dir(uid: int | None = None) -> str:
    """``$XDG_RUNTIME_DIR``, else ``/run/user/<uid>`` or ``$TMPDIR/storage-run-<uid>`` if private."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime:
        try:
            return os.path.realpath(runtime, strict=True)
        except OSError:
            return runtime
    uid = rootless_uid() if uid is None else uid
    candidate = os.path.join(RUN_USER_DIR, str(uid))
    try:
        os.makedirs(candidate, 0o700, exist_ok=True)
    except OSError as exc:
        _log.debug("%s", exc)
    if _owned_private_dir(candidate):
        return candidate
    import tempfile

    candidate = os.path.join(tempfile.gettempdir(), f"storage-run-{uid}")
    try:
        os.makedirs(candidate, 0o700, exist_ok=True)
    except OSError as exc:
        _log.debug("%s", exc)
    if _owned_private_dir(candidate):
        return candidate
    raise ConfigError(sentinel=f'path "{candidate}" exists and it is not writeable only by the current user')


def _can_use_rootless_overlay() -> bool:
    """fuse-overlayfs in PATH, or a kernel ≥ 5.13 (native rootless overlay)."""
    if shutil.which("fuse-overlayfs"):
        return True
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if not match:
        return False
    major, minor = int(match.group(1)), int(match.group(2))
    return (major, minor) >= (5, 13)


def rootless_store_options(system: StoreOptions) -> StoreOptions:
    """Step 2 of config.md §1 (§3): per-user options derived from the system opts."""
    uid = rootless_uid()
    opts = StoreOptions()
    data_home = os.environ.get("XDG_DATA_HOME", "")
    if not data_home:
        home = _home_dir()
        if not home:
            raise ConfigError(sentinel="could not get either XDG_DATA_HOME or HOME")
        data_home = os.path.join(home, ".local", "share")
    opts.run_root = os.path.join(rootless_runtime_dir(uid), "containers")
    try:
        os.makedirs(opts.run_root, 0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(sentinel=f"unable to make rootless runtime: {_go_error_text(exc)}") from exc
    opts.pull_options = dict(system.pull_options)
    if system.rootless_storage_path:
        opts.graph_root = expand_env_path(system.rootless_storage_path, uid)
    else:
        opts.graph_root = os.path.join(data_home, "containers", "storage")

    if system.driver_name in _ROOTLESS_DRIVERS:
        opts.driver_name = system.driver_name
    env_driver = os.environ.get("STORAGE_DRIVER", "")
    if env_driver:
        opts.driver_name = env_driver
    if opts.driver_name == "overlay2":
        _log.warning("Switching default driver from overlay2 to the equivalent overlay driver")
        opts.driver_name = "overlay"

    if _config_file_override is not None:
        opts.driver_options = list(system.driver_options)
        opts.image_store = system.image_store
    elif opts.driver_name == "overlay":
        for option in system.driver_options:
            if "ignore_chown_errors" in option:
                opts.driver_options.append(option)
                break

    if not opts.driver_name:
        if not system.driver_priority:
            try:
                entries = sorted(os.listdir(opts.graph_root))
            except OSError:
                entries = []
            for entry in entries:
                if entry.endswith("-images"):
                    opts.driver_name = entry[: -len("-images")]
                    break
            if not opts.driver_name:
                opts.driver_name = "overlay" if _can_use_rootless_overlay() else "vfs"
        else:
            opts.driver_priority = list(system.driver_priority)

    storage_opts = os.environ.get("STORAGE_OPTS", "")
    if storage_opts:
        opts.driver_options.extend(storage_opts.split(","))
    return opts


def default_store_options() -> StoreOptions:
    """The default store options of this process: the full sequence of config.md §1.

    Raises :class:`ConfigError` for an unreadable or invalid configuration, an empty
    runroot/graphroot, or an ``imagestore`` equal to the graph root.
    """
    per_user = use_per_user_storage()
    memo: dict[str, StoreOptions] = {}
    opts = system_store_options(memo)
    if per_user:
        opts = rootless_store_options(opts)
    conf = default_config_file()
    if _config_file_override is None and _exists(conf):
        fallback_run, fallback_graph = opts.run_root, opts.graph_root
        opts = _load_memo(conf, memo)
        if not opts.run_root:
            opts.run_root = fallback_run
        if not opts.graph_root:
            opts.graph_root = (opts.rootless_storage_path if per_user else "") or fallback_graph
    uid = rootless_uid()
    if not opts.run_root:
        raise ConfigError(sentinel="runroot must be set")
    opts.run_root = expand_env_path(opts.run_root, uid)
    if not opts.graph_root:
        raise ConfigError(sentinel="graphroot must be set")
    opts.graph_root = expand_env_path(opts.graph_root, uid)
    if opts.rootless_storage_path:
        opts.rootless_storage_path = expand_env_path(opts.rootless_storage_path, uid)
    if opts.image_store and opts.image_store == opts.graph_root:
        raise ConfigError(
            sentinel=f"imagestore {opts.image_store} must either be not set or be a different than graphroot"
        )
    return opts


def cli_store_options(
    graph: str | None,
    run: str | None,
    driver: str | None,
    storage_opts: list[str],
    image_store: str | None,
    transient_store: bool,
) -> StoreOptions:
    """The ``containers-storage`` global-flag rule (cli.md "Store options").

    With none of graph/run/driver/storage options given, the result is exactly
    :func:`default_store_options` (``--image-store``/``--transient-store`` alone are
    discarded, as upstream).  Otherwise only the command-line values are used, the
    environment is not consulted, and a single missing root is taken from the defaults.
    With both roots missing they stay empty: opening the store then fails with
    ``IncompleteOptions`` as upstream's ``GetStore`` does.  Roots are made absolute.
    """
    if not graph and not run and not driver and not storage_opts:
        return default_store_options()
    opts = StoreOptions(
        run_root=run or "",
        graph_root=graph or "",
        image_store=image_store or "",
        driver_name=driver or "",
        driver_options=list(storage_opts),
        transient_store=transient_store,
    )
    if bool(opts.run_root) != bool(opts.graph_root):
        defaults = default_store_options()
        if not opts.run_root:
            opts.run_root = defaults.run_root
        if not opts.graph_root:
            opts.graph_root = defaults.graph_root
    for name in ("run_root", "graph_root", "image_store"):
        value = getattr(opts, name)
        if value:
            setattr(opts, name, os.path.abspath(value))
    return opts


__all__ = [
    "AUTO_USERNS_MAX_SIZE",
    "AUTO_USERNS_MIN_SIZE",
    "DEFAULT_GRAPH_ROOT",
    "DEFAULT_RUN_ROOT",
    "ROOT_AUTO_USERNS_USER",
    "StoreOptions",
    "cli_store_options",
    "default_config_file",
    "default_store_options",
    "expand_env",
    "expand_env_path",
    "get_mount_options",
    "is_rootless",
    "load_config_file",
    "parse_driver_option",
    "rootless_runtime_dir",
    "rootless_store_options",
    "rootless_uid",
    "set_default_config_file_path",
    "system_store_options",
    "use_per_user_storage",
]
