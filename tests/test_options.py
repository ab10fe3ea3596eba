"""storage.conf parsing, environment variables, root/rootless defaults and the CLI rule."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

import pytest

from containers_storage import idtools, options
from containers_storage.errors import ConfigError
from containers_storage.options import (
    StoreOptions,
    cli_store_options,
    default_config_file,
    default_store_options,
    expand_env,
    expand_env_path,
    get_mount_options,
    is_rootless,
    load_config_file,
    parse_driver_option,
    rootless_uid,
    set_default_config_file_path,
    use_per_user_storage,
)
from containers_storage.records import IDMap

DEBIAN_CONF = """\
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
[storage.options]
additionalimagestores = [
]
pull_options = {enable_partial_images = "false", use_hard_links = "false", ostree_repos=""}
[storage.options.overlay]
mountopt = "nodev"
[storage.options.thinpool]
"""

_ENV_VARS = (
    "CONTAINERS_STORAGE_CONF",
    "STORAGE_DRIVER",
    "STORAGE_OPTS",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "_CONTAINERS_USERNS_CONFIGURED",
    "_CONTAINERS_ROOTLESS_UID",
    "_CONTAINERS_ROOTLESS_GID",
)


class Sandbox:
    """Built-in paths redirected under tmp_path and a clean environment."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.system = root / "usr/share/containers/storage.conf"
        self.override = root / "etc/containers/storage.conf"
        self.run_root = str(root / "run/containers/storage")
        self.graph_root = str(root / "var/lib/containers/storage")
        self.home = root / "home/user"
        self.home.mkdir(parents=True)
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        monkeypatch.setattr(options, "SYSTEM_CONFIG_FILE", str(self.system))
        monkeypatch.setattr(options, "OVERRIDE_CONFIG_FILE", str(self.override))
        monkeypatch.setattr(options, "DEFAULT_RUN_ROOT", self.run_root)
        monkeypatch.setattr(options, "DEFAULT_GRAPH_ROOT", self.graph_root)
        monkeypatch.setattr(options, "RUN_USER_DIR", str(root / "run/user"))
        monkeypatch.setattr(options, "_config_file_override", None)
        monkeypatch.setattr(options, "_can_use_rootless_overlay", lambda: True)
        monkeypatch.setattr(tempfile, "tempdir", str(self.tmp))
        for name in _ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(self.home))

    def write(self, path: Path, text: str) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    def rootless(self, uid: int = 1000) -> None:
        """Look like the rootless re-exec: euid 0 inside a user namespace for *uid*."""
        self.monkeypatch.setenv("_CONTAINERS_USERNS_CONFIGURED", "done")
        self.monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", str(uid))


@pytest.fixture
def sb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
    return Sandbox(tmp_path, monkeypatch)


def conf(sb: Sandbox, text: str, name: str = "storage.conf") -> str:
    return sb.write(sb.root / name, text)


# --------------------------------------------------------------------------
# StoreOptions


def test_store_options_defaults() -> None:
    opts = StoreOptions()
    assert opts.run_root == opts.graph_root == opts.image_store == opts.driver_name == ""
    assert opts.driver_priority == opts.driver_options == []
    assert opts.uidmap == opts.gidmap == []
    assert (opts.auto_userns_min_size, opts.auto_userns_max_size) == (1024, 65536)
    assert opts.pull_options == {}
    assert not opts.disable_volatile and not opts.transient_store


def test_copy_does_not_share_containers() -> None:
    opts = StoreOptions(driver_options=["a"], pull_options={"k": "v"}, uidmap=[IDMap(0, 1, 1)])
    dup = opts.copy()
    assert dup == opts
    dup.driver_options.append("b")
    dup.pull_options["x"] = "y"
    dup.uidmap.clear()
    assert opts.driver_options == ["a"] and opts.pull_options == {"k": "v"} and opts.uidmap


def test_config_json_empty() -> None:
    assert StoreOptions().to_config_json() == {"RootlessStoragePath": "", "PullOptions": None}


def test_config_json_full_in_go_field_order() -> None:
    opts = StoreOptions(
        run_root="/run/x",
        graph_root="/var/x",
        image_store="/img",
        rootless_storage_path="/home/$USER/s",
        driver_name="overlay",
        driver_priority=["overlay", "vfs"],
        driver_options=["overlay.mountopt=nodev"],
        uidmap=[IDMap(0, 100000, 65536)],
        gidmap=[IDMap(0, 200000, 65536)],
        root_auto_userns_user="containers",
        auto_userns_min_size=2048,
        auto_userns_max_size=4096,
        disable_volatile=True,
        transient_store=True,
        pull_options={"use_hard_links": "false", "enable_partial_images": "true"},
    )
    out = opts.to_config_json()
    assert list(out) == [
        "runroot",
        "root",
        "imagestore",
        "RootlessStoragePath",
        "driver",
        "driver-priority",
        "driver-options",
        "uidmap",
        "gidmap",
        "root_auto_ns_user",
        "auto_userns_min_size",
        "auto_userns_max_size",
        "PullOptions",
        "disable-volatile",
        "transient_store",
    ]
    assert out["uidmap"] == [{"container_id": 0, "host_id": 100000, "size": 65536}]
    assert list(out["PullOptions"]) == ["enable_partial_images", "use_hard_links"]
    assert (out["auto_userns_min_size"], out["auto_userns_max_size"]) == (2048, 4096)


def test_config_json_debian_defaults(sb: Sandbox) -> None:
    out = load_config_file(conf(sb, DEBIAN_CONF)).to_config_json()
    assert out == {
        "runroot": "/run/containers/storage",
        "root": "/var/lib/containers/storage",
        "RootlessStoragePath": "",
        "driver": "overlay",
        "driver-options": ["overlay.mountopt=nodev"],
        "PullOptions": {"enable_partial_images": "false", "ostree_repos": "", "use_hard_links": "false"},
    }


# --------------------------------------------------------------------------
# Small helpers


@pytest.mark.parametrize(
    ("opt", "expected"),
    [
        ("overlay.mountopt=nodev", ("overlay.mountopt", "nodev")),
        (" Overlay.MountOpt = nodev,metacopy=on ", ("overlay.mountopt", "nodev,metacopy=on")),
        (".imagestore=/a", (".imagestore", "/a")),
        ("key=", ("key", "")),
    ],
)
def test_parse_driver_option(opt: str, expected: tuple[str, str]) -> None:
    assert parse_driver_option(opt) == expected


def test_parse_driver_option_without_equals() -> None:
    with pytest.raises(ConfigError) as info:
        parse_driver_option("overlay.mountopt")
    assert str(info.value) == "unable to parse key/value option: overlay.mountopt"


def test_get_mount_options() -> None:
    assert get_mount_options("overlay", ["overlay.size=1G", "overlay.mountopt=nodev,noexec"]) == [
        "nodev",
        "noexec",
    ]
    assert get_mount_options("overlay", [".mountopt=nodev"]) == ["nodev"]
    assert get_mount_options("overlay", ["vfs.mountopt=nodev"]) == []
    assert get_mount_options("vfs", []) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/a/$FOO/b", "/a/foo/b"),
        ("/a/${FOO}x", "/a/foox"),
        ("/a/$FOOx", "/a/"),
        ("/a/$UNSET_VAR_X/b", "/a//b"),
        ("cost$", "cost$"),
        ("a$/b", "a$/b"),
        ("a${}b", "ab"),
        ("a${FOO", "aFOO"),
        ("$FOO$FOO", "foofoo"),
    ],
)
def test_expand_env_follows_go(text: str, expected: str) -> None:
    assert expand_env(text, {"FOO": "foo"}) == expected


def test_expand_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("BASE_DIR_X", str(tmp_path))
    assert expand_env_path("$BASE_DIR_X/link", 1000) == str(real)
    assert expand_env_path("/nonexistent//x/../$UID/", 1000) == "/nonexistent/1000"


# --------------------------------------------------------------------------
# load_config_file


def test_load_debian_file_without_warnings(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="containers_storage"):
        opts = load_config_file(conf(sb, DEBIAN_CONF), StoreOptions())
    assert caplog.records == []
    assert opts.driver_name == "overlay"
    assert opts.run_root == "/run/containers/storage"
    assert opts.graph_root == "/var/lib/containers/storage"
    assert opts.driver_options == ["overlay.mountopt=nodev"]
    assert opts.pull_options == {
        "enable_partial_images": "false",
        "use_hard_links": "false",
        "ostree_repos": "",
    }


def test_load_resets_and_does_not_modify_the_given_options(sb: Sandbox) -> None:
    given = StoreOptions(run_root="/r", graph_root="/g", driver_options=["x=y"], transient_store=True)
    opts = load_config_file(conf(sb, '[storage]\ndriver = "vfs"\n'), given)
    assert (opts.run_root, opts.graph_root, opts.driver_options, opts.transient_store) == ("", "", [], False)
    assert given == StoreOptions(run_root="/r", graph_root="/g", driver_options=["x=y"], transient_store=True)


def test_load_storage_table_keys(sb: Sandbox) -> None:
    opts = load_config_file(
        conf(
            sb,
            """
[storage]
driver_priority = ["overlay", "btrfs"]
runroot = "/r"
graphroot = "/g"
imagestore = "/i"
rootless_storage_path = "$HOME/$UID/s"
transient_store = true
[storage.options]
root-auto-userns-user = "someone"
auto-userns-min-size = 2048
auto-userns-max-size = 8192
disable-volatile = true
""",
        )
    )
    assert opts.driver_name == ""
    assert opts.driver_priority == ["overlay", "btrfs"]
    assert (opts.run_root, opts.graph_root, opts.image_store) == ("/r", "/g", "/i")
    assert opts.rootless_storage_path == "$HOME/$UID/s"  # expanded only by default_store_options
    assert opts.transient_store and opts.disable_volatile
    assert opts.root_auto_userns_user == "someone"
    assert (opts.auto_userns_min_size, opts.auto_userns_max_size) == (2048, 8192)


def test_load_zero_userns_sizes_keep_defaults(sb: Sandbox) -> None:
    opts = load_config_file(conf(sb, "[storage.options]\nauto-userns-min-size = 0\n"))
    assert (opts.auto_userns_min_size, opts.auto_userns_max_size) == (1024, 65536)


def test_additional_stores_use_the_configured_driver(sb: Sandbox) -> None:
    text = """
[storage]
driver = "%s"
[storage.options]
additionalimagestores = ["/a", "/b"]
additionallayerstores = ["/l:ref"]
"""
    assert load_config_file(conf(sb, text % "overlay")).driver_options == [
        "overlay.imagestore=/a",
        "overlay.imagestore=/b",
        "overlay.additionallayerstore=/l:ref",
    ]
    assert load_config_file(conf(sb, text % "vfs")).driver_options == [
        "vfs.imagestore=/a",
        "vfs.imagestore=/b",
        "vfs.additionallayerstore=/l:ref",
    ]


def test_additional_stores_without_driver(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    path = conf(sb, '[storage.options]\nadditionalimagestores = ["/a"]\n')
    with caplog.at_level(logging.WARNING, logger="containers_storage"):
        opts = load_config_file(path)
    assert opts.driver_options == [".imagestore=/a"]
    assert [r.getMessage() for r in caplog.records] == [
        f"The storage 'driver' option should be set in {path}. A driver was picked automatically."
    ]


def test_driver_priority_silences_the_missing_driver_warning(
    sb: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="containers_storage"):
        load_config_file(conf(sb, '[storage]\ndriver_priority = ["vfs"]\n'))
    assert caplog.records == []


def test_overlay2_is_renamed(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    path = conf(
        sb,
        """
[storage]
driver = "overlay2"
[storage.options]
additionalimagestores = ["/a"]
[storage.options.overlay]
mountopt = "nodev"
""",
    )
    with caplog.at_level(logging.WARNING, logger="containers_storage"):
        opts = load_config_file(path)
    assert opts.driver_name == "overlay"
    # Legacy [storage.options] keys keep the configured spelling, driver tables the canonical one.
    assert opts.driver_options == ["overlay2.imagestore=/a", "overlay.mountopt=nodev"]
    assert any("overlay2 to the equivalent overlay driver" in r.getMessage() for r in caplog.records)


def test_overlay_table_and_fallbacks(sb: Sandbox) -> None:
    opts = load_config_file(
        conf(
            sb,
            """
[storage]
driver = "overlay"
[storage.options.overlay]
ignore_chown_errors = "true"
mount_program = "/usr/bin/fuse-overlayfs"
mountopt = "nodev,metacopy=on"
size = "10G"
inodes = "1000"
skip_mount_home = "false"
force_mask = "shared"
use_composefs = "false"
""",
        )
    )
    assert opts.driver_options == [
        "overlay.ignore_chown_errors=true",
        "overlay.mount_program=/usr/bin/fuse-overlayfs",
        "overlay.mountopt=nodev,metacopy=on",
        "overlay.size=10G",
        "overlay.inodes=1000",
        "overlay.skip_mount_home=false",
        "overlay.force_mask=shared",
        "overlay.use_composefs=false",
    ]


def test_legacy_options_placement_and_overlay_fallback(sb: Sandbox) -> None:
    # Upstream emits the legacy option and, for overlay, the table fallback too.
    opts = load_config_file(
        conf(
            sb,
            """
[storage]
driver = "overlay"
[storage.options]
size = "5G"
mount_program = "/bin/fuse"
skip_mount_home = "true"
ignore_chown_errors = "true"
force_mask = 0o700
mountopt = "nodev"
""",
        )
    )
    assert opts.driver_options == [
        "overlay.size=5G",
        "overlay.mount_program=/bin/fuse",
        "overlay.skip_mount_home=true",
        "overlay.ignore_chown_errors=true",
        "overlay.force_mask=700",
        "overlay.mountopt=nodev",
        "overlay.ignore_chown_errors=true",
        "overlay.mount_program=/bin/fuse",
        "overlay.mountopt=nodev",
        "overlay.size=5G",
        "overlay.skip_mount_home=true",
        "overlay.force_mask=700",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0o755", "755"), ("493", "755"), ('"private"', "700"), ('"shared"', "755"), ('"0750"', "750")],
)
def test_force_mask_in_options_table(sb: Sandbox, value: str, expected: str) -> None:
    opts = load_config_file(conf(sb, f'[storage]\ndriver = "vfs"\n[storage.options]\nforce_mask = {value}\n'))
    assert opts.driver_options == [f"vfs.force_mask={expected}"]


@pytest.mark.parametrize(
    ("value", "expected"), [('"private"', "private"), ('"0755"', "0755"), ("0o700", "700")]
)
def test_force_mask_in_overlay_table(sb: Sandbox, value: str, expected: str) -> None:
    text = f'[storage]\ndriver = "overlay"\n[storage.options.overlay]\nforce_mask = {value}\n'
    assert load_config_file(conf(sb, text)).driver_options == [f"overlay.force_mask={expected}"]


def test_invalid_force_mask(sb: Sandbox) -> None:
    with pytest.raises(ConfigError, match="force_mask"):
        load_config_file(conf(sb, '[storage.options]\nforce_mask = "0799"\n'))


def test_string_bools_accept_toml_bools(sb: Sandbox) -> None:
    text = '[storage]\ndriver = "vfs"\n[storage.options.vfs]\nignore_chown_errors = true\n'
    assert load_config_file(conf(sb, text)).driver_options == ["vfs.ignore_chown_errors=true"]


def test_vfs_table_falls_back_to_options(sb: Sandbox) -> None:
    text = '[storage]\ndriver = "vfs"\n[storage.options]\nignore_chown_errors = "true"\n'
    assert load_config_file(conf(sb, text)).driver_options == [
        "vfs.ignore_chown_errors=true",
        "vfs.ignore_chown_errors=true",
    ]


def test_btrfs_min_space_wins_alone(sb: Sandbox) -> None:
    base = '[storage]\ndriver = "btrfs"\n[storage.options.btrfs]\n'
    assert load_config_file(conf(sb, base + 'min_space = "1G"\nsize = "2G"\n')).driver_options == [
        "btrfs.min_space=1G"
    ]
    assert load_config_file(conf(sb, base + 'size = "2G"\n')).driver_options == ["btrfs.size=2G"]


def test_zfs_and_aufs_tables(sb: Sandbox) -> None:
    text = (
        '[storage]\ndriver = "zfs"\n[storage.options.zfs]\nfsname = "pool/x"\nmountopt = "ro"\nsize = "3G"\n'
    )
    assert load_config_file(conf(sb, text)).driver_options == [
        "zfs.fsname=pool/x",
        "zfs.mountopt=ro",
        "zfs.size=3G",
    ]
    text = '[storage]\ndriver = "aufs"\n[storage.options.aufs]\nmountopt = "dio"\n'
    assert load_config_file(conf(sb, text)).driver_options == ["aufs.mountopt=dio"]


def test_tables_of_other_drivers_are_ignored(sb: Sandbox) -> None:
    text = '[storage]\ndriver = "vfs"\n[storage.options.overlay]\nmountopt = "nodev"\n'
    assert load_config_file(conf(sb, text)).driver_options == []


def test_unknown_keys_warn(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    path = conf(
        sb,
        """
[storage]
driver = "vfs"
bogus = 1
[storage.options]
ostree_repo = ""
[storage.options.overlay]
nope = "x"
[storage.options.thinpool]
autoextend_percent = "20"
[other]
""",
    )
    with caplog.at_level(logging.WARNING, logger="containers_storage"):
        opts = load_config_file(path)
    assert opts.driver_name == "vfs"
    assert [r.getMessage() for r in caplog.records] == [
        "Failed to decode the keys "
        '["storage.bogus" "storage.options.ostree_repo" "storage.options.overlay.nope" '
        f'"storage.options.thinpool.autoextend_percent" "other"] from "{path}"'
    ]


def test_toml_syntax_error_names_file_and_position(sb: Sandbox) -> None:
    path = conf(sb, '[storage]\ndriver = "vfs"\nrunroot = \n')
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "line 3" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[storage]\ndriver = 5\n", "storage.driver"),
        ('[storage]\ndriver_priority = "vfs"\n', "storage.driver_priority"),
        ('[storage]\ntransient_store = "yes"\n', "storage.transient_store"),
        ("[storage.options]\nauto-userns-min-size = -1\n", "storage.options.auto-userns-min-size"),
        ("[storage.options]\nauto-userns-max-size = 4294967296\n", "storage.options.auto-userns-max-size"),
        ("[storage.options]\npull_options = {a = 1}\n", "storage.options.pull_options"),
        ('[storage]\noptions = "x"\n', "storage.options"),
        ("storage = 1\n", "storage"),
    ],
)
def test_wrong_types_are_errors(sb: Sandbox, text: str, key: str) -> None:
    path = conf(sb, text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert f'{path}: key "{key}"' in str(info.value)


def test_missing_file(sb: Sandbox) -> None:
    path = str(sb.root / "missing.conf")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert str(info.value) == f"open {path}: no such file or directory"


def test_storage_driver_env_overrides(sb: Sandbox) -> None:
    sb.monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    opts = load_config_file(
        conf(sb, DEBIAN_CONF.replace("additionalimagestores = [\n]", 'additionalimagestores = ["/a"]'))
    )
    assert opts.driver_name == "vfs"
    assert opts.driver_options == ["vfs.imagestore=/a"]  # the overlay table no longer applies


@pytest.mark.parametrize(("value", "expected"), [("", []), ("a=b", ["a=b"]), ("a=b,c=d", ["a=b", "c=d"])])
def test_storage_opts_env_replaces(sb: Sandbox, value: str, expected: list[str]) -> None:
    sb.monkeypatch.setenv("STORAGE_OPTS", value)
    assert load_config_file(conf(sb, DEBIAN_CONF)).driver_options == expected


def test_explicit_environ_mapping(sb: Sandbox) -> None:
    opts = load_config_file(conf(sb, DEBIAN_CONF), environ={"STORAGE_DRIVER": "vfs", "STORAGE_OPTS": "x=1"})
    assert (opts.driver_name, opts.driver_options) == ("vfs", ["x=1"])


def test_remap_uids_and_gids(sb: Sandbox) -> None:
    text = '[storage.options]\nremap-uids = "0:100000:65536"\nremap-gids = "0:200000:1:1:300000:10"\n'
    opts = load_config_file(conf(sb, text))
    assert opts.uidmap == [IDMap(0, 100000, 65536)]
    assert opts.gidmap == [IDMap(0, 200000, 1), IDMap(1, 300000, 10)]


def test_remap_uids_malformed(sb: Sandbox) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_file(conf(sb, '[storage.options]\nremap-uids = "0:1"\n'))
    assert str(info.value) == (
        'initializing ID mappings: remap-uids setting is malformed expected ["uint32:uint32:uint32"]: ["0:1"]'
    )


def test_remap_user_reads_subid_files(sb: Sandbox) -> None:
    sb.monkeypatch.setattr(idtools, "SUBUID_FILE", sb.write(sb.root / "subuid", "alice:100000:65536\n"))
    sb.monkeypatch.setattr(idtools, "SUBGID_FILE", sb.write(sb.root / "subgid", "alice:200000:65536\n"))
    opts = load_config_file(conf(sb, '[storage.options]\nremap-user = "alice"\n'))
    assert opts.uidmap == [IDMap(0, 100000, 65536)]
    assert opts.gidmap == [IDMap(0, 200000, 65536)]
    with pytest.raises(ConfigError, match="no subuid ranges found"):
        load_config_file(conf(sb, '[storage.options]\nremap-group = "bob"\n'))


# --------------------------------------------------------------------------
# Identity


def test_is_rootless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_CONTAINERS_USERNS_CONFIGURED", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert is_rootless()
    monkeypatch.setenv("_CONTAINERS_USERNS_CONFIGURED", "done")
    assert not is_rootless()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("_CONTAINERS_USERNS_CONFIGURED")
    assert not is_rootless()


def test_per_user_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_CONTAINERS_USERNS_CONFIGURED", "_CONTAINERS_ROOTLESS_UID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert (use_per_user_storage(), rootless_uid()) == (False, 0)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert (use_per_user_storage(), rootless_uid()) == (True, 1000)
    # Inside the rootless user namespace: euid 0, the original uid in the environment.
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("_CONTAINERS_USERNS_CONFIGURED", "done")
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "1234")
    assert (use_per_user_storage(), rootless_uid()) == (True, 1234)
    # Real root re-exec'd: system paths.
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "0")
    assert not use_per_user_storage()


# --------------------------------------------------------------------------
# default_config_file


def test_config_file_env_wins(sb: Sandbox) -> None:
    sb.write(sb.override, DEBIAN_CONF)
    sb.monkeypatch.setenv("CONTAINERS_STORAGE_CONF", "/some/where.conf")
    assert default_config_file() == "/some/where.conf"
    sb.rootless()
    assert default_config_file() == "/some/where.conf"


def test_config_file_root(sb: Sandbox) -> None:
    assert default_config_file() == str(sb.system)
    sb.write(sb.override, DEBIAN_CONF)
    assert default_config_file() == str(sb.override)


def test_config_file_rootless(sb: Sandbox) -> None:
    sb.rootless()
    assert default_config_file() == str(sb.home / ".config/containers/storage.conf")
    sb.monkeypatch.setenv("XDG_CONFIG_HOME", str(sb.root / "xdg"))
    assert default_config_file() == str(sb.root / "xdg/containers/storage.conf")


def test_config_file_rootless_without_home(sb: Sandbox) -> None:
    sb.rootless(uid=4000000123)  # no such account either
    sb.monkeypatch.delenv("HOME")
    with pytest.raises(ConfigError, match="cannot determine user's homedir"):
        default_config_file()


def test_config_file_set_programmatically(sb: Sandbox) -> None:
    set_default_config_file_path("/prog.conf")
    assert default_config_file() == "/prog.conf"
    set_default_config_file_path(None)
    assert default_config_file() == str(sb.system)


# --------------------------------------------------------------------------
# default_store_options — root


def test_defaults_without_any_file(sb: Sandbox) -> None:
    opts = default_store_options()
    assert (opts.run_root, opts.graph_root) == (sb.run_root, sb.graph_root)
    assert opts.driver_name == "" and opts.driver_options == []


def test_defaults_from_system_file(sb: Sandbox) -> None:
    sb.write(sb.system, DEBIAN_CONF)
    opts = default_store_options()
    assert (opts.run_root, opts.graph_root) == ("/run/containers/storage", "/var/lib/containers/storage")
    assert opts.driver_name == "overlay"
    assert opts.driver_options == ["overlay.mountopt=nodev"]


def test_override_file_replaces_system_file(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    sb.write(sb.system, DEBIAN_CONF)
    sb.write(sb.override, '[storage]\ndriver = "vfs"\nbogus = 1\n')
    with caplog.at_level(logging.WARNING, logger="containers_storage"):
        opts = default_store_options()
    assert opts.driver_name == "vfs"
    assert opts.driver_options == []  # files never merge
    assert (opts.run_root, opts.graph_root) == (sb.run_root, sb.graph_root)  # refilled
    assert len(caplog.records) == 1  # parsed once per sequence


def test_xdg_config_home_file_is_the_system_override_even_for_root(sb: Sandbox) -> None:
    sb.write(sb.override, '[storage]\ndriver = "overlay"\n')
    sb.write(sb.root / "xdg/containers/storage.conf", '[storage]\ndriver = "vfs"\n')
    sb.monkeypatch.setenv("XDG_CONFIG_HOME", str(sb.root / "xdg"))
    # Step 1 reads the XDG file, but for root the selected file is still /etc's (step 3).
    assert options.system_store_options().driver_name == "vfs"
    assert default_store_options().driver_name == "overlay"


def test_containers_storage_conf(sb: Sandbox) -> None:
    sb.write(sb.override, '[storage]\ndriver = "overlay"\n')
    sb.monkeypatch.setenv("CONTAINERS_STORAGE_CONF", conf(sb, '[storage]\ndriver = "vfs"\nrunroot = "/r"\n'))
    opts = default_store_options()
    assert (opts.driver_name, opts.run_root, opts.graph_root) == ("vfs", "/r", sb.graph_root)


def test_containers_storage_conf_must_exist(sb: Sandbox) -> None:
    missing = str(sb.root / "missing.conf")
    sb.monkeypatch.setenv("CONTAINERS_STORAGE_CONF", missing)
    with pytest.raises(ConfigError) as info:
        default_store_options()
    assert str(info.value) == f"stat {missing}: no such file or directory"


def test_parse_errors_are_fatal(sb: Sandbox) -> None:
    sb.write(sb.override, "[storage\n")
    with pytest.raises(ConfigError, match=str(sb.override)):
        default_store_options()


def test_env_vars_apply_to_root_defaults(sb: Sandbox) -> None:
    sb.write(sb.system, DEBIAN_CONF)
    sb.monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    sb.monkeypatch.setenv("STORAGE_OPTS", "")
    opts = default_store_options()
    assert (opts.driver_name, opts.driver_options) == ("vfs", [])


def test_root_paths_expanded_and_resolved(sb: Sandbox) -> None:
    real = sb.root / "real"
    real.mkdir()
    (sb.root / "link").symlink_to(real)
    sb.monkeypatch.setenv("MY_BASE", str(sb.root))
    sb.write(sb.override, '[storage]\nrunroot = "${MY_BASE}/link"\ngraphroot = "$MY_BASE/g/$UID/../x"\n')
    opts = default_store_options()
    assert opts.run_root == str(real)
    assert opts.graph_root == str(sb.root / "g/x")


def test_imagestore_equal_to_graphroot(sb: Sandbox) -> None:
    sb.write(sb.override, '[storage]\ngraphroot = "/g"\nimagestore = "/g"\n')
    with pytest.raises(ConfigError) as info:
        default_store_options()
    assert str(info.value) == "imagestore /g must either be not set or be a different than graphroot"


def test_programmatic_config_file(sb: Sandbox) -> None:
    sb.write(sb.override, '[storage]\ndriver = "overlay"\n')
    set_default_config_file_path(conf(sb, '[storage]\ndriver = "vfs"\n[storage.options]\nsize = "1G"\n'))
    opts = default_store_options()
    assert (opts.driver_name, opts.driver_options) == ("vfs", ["vfs.size=1G"])
    assert (opts.run_root, opts.graph_root) == (sb.run_root, sb.graph_root)


def test_programmatic_config_file_must_exist(sb: Sandbox) -> None:
    set_default_config_file_path(str(sb.root / "nope.conf"))
    with pytest.raises(ConfigError, match="no such file"):
        default_store_options()


# --------------------------------------------------------------------------
# default_store_options — rootless


def _private(path: Path) -> bool:
    st = path.stat()
    return stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o777) == 0o700


def test_rootless_defaults(sb: Sandbox) -> None:
    sb.rootless()
    runtime = sb.root / "xdg-run"
    runtime.mkdir()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    opts = default_store_options()
    assert opts.run_root == str(runtime / "containers")
    assert _private(runtime / "containers")
    assert opts.graph_root == str(sb.home / ".local/share/containers/storage")
    assert opts.driver_name == "overlay"  # _can_use_rootless_overlay is patched to True


def test_rootless_xdg_data_home(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.monkeypatch.setenv("XDG_DATA_HOME", str(sb.root / "data"))
    assert default_store_options().graph_root == str(sb.root / "data/containers/storage")


def test_rootless_without_overlay_support_uses_vfs(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setattr(options, "_can_use_rootless_overlay", lambda: False)
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    assert default_store_options().driver_name == "vfs"


def test_rootless_driver_detected_from_existing_images_dir(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    (sb.home / ".local/share/containers/storage/vfs-images").mkdir(parents=True)
    assert default_store_options().driver_name == "vfs"


def test_rootless_runtime_dir_under_run_user(sb: Sandbox) -> None:
    sb.rootless(uid=1234)
    opts = default_store_options()
    assert opts.run_root == str(sb.root / "run/user/1234/containers")
    assert _private(sb.root / "run/user/1234")


def test_rootless_runtime_dir_readable_by_others_is_fine(sb: Sandbox) -> None:
    sb.rootless(uid=1234)
    (sb.root / "run/user/1234").mkdir(parents=True)
    (sb.root / "run/user/1234").chmod(0o755)
    assert default_store_options().run_root == str(sb.root / "run/user/1234/containers")


def test_rootless_runtime_dir_falls_back_to_tmpdir(sb: Sandbox) -> None:
    sb.rootless(uid=1234)
    shared = sb.root / "run/user/1234"
    shared.mkdir(parents=True)
    shared.chmod(0o775)  # group-writable: not private
    opts = default_store_options()
    assert opts.run_root == str(sb.tmp / "storage-run-1234/containers")
    assert _private(sb.tmp / "storage-run-1234")


def test_rootless_runtime_dir_unusable(sb: Sandbox) -> None:
    sb.rootless(uid=1234)
    for path in (sb.root / "run/user/1234", sb.tmp / "storage-run-1234"):
        path.mkdir(parents=True)
        path.chmod(0o777)
    with pytest.raises(ConfigError) as info:
        default_store_options()
    assert str(info.value) == (
        f'path "{sb.tmp / "storage-run-1234"}" exists and it is not writeable only by the current user'
    )


def test_rootless_derives_from_system_options(sb: Sandbox) -> None:
    sb.rootless(uid=1000)
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.write(
        sb.override,
        """
[storage]
driver = "overlay"
rootless_storage_path = "$HOME/rls/$UID"
imagestore = "/img"
[storage.options]
additionalimagestores = ["/a"]
pull_options = {use_hard_links = "true"}
[storage.options.overlay]
mountopt = "nodev"
ignore_chown_errors = "true"
""",
    )
    opts = default_store_options()
    assert opts.graph_root == str(sb.home / "rls/1000")
    assert opts.driver_name == "overlay"
    assert opts.driver_options == ["overlay.ignore_chown_errors=true"]  # only that one is inherited
    assert opts.image_store == ""
    assert opts.pull_options == {"use_hard_links": "true"}
    assert opts.run_root == str(sb.root / "rt/containers")


def test_rootless_ignores_non_rootless_system_driver(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.monkeypatch.setattr(options, "_can_use_rootless_overlay", lambda: False)
    sb.write(sb.override, '[storage]\ndriver = "zfs"\n')
    assert default_store_options().driver_name == "vfs"
    sb.write(sb.override, '[storage]\ndriver = "overlay2"\n')
    assert default_store_options().driver_name == "overlay"


def test_rootless_copies_driver_priority(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.write(sb.override, '[storage]\ndriver_priority = ["btrfs", "vfs"]\n')
    opts = default_store_options()
    assert (opts.driver_name, opts.driver_priority) == ("", ["btrfs", "vfs"])


def test_rootless_env_vars(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.write(
        sb.override,
        '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nignore_chown_errors = "true"\n',
    )
    sb.monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    sb.monkeypatch.setenv("STORAGE_OPTS", "vfs.a=1,vfs.b=2")
    opts = default_store_options()
    assert opts.driver_name == "vfs"
    # STORAGE_OPTS replaces the system list (step 1), then is appended to the rootless one.
    assert opts.driver_options == ["vfs.a=1", "vfs.b=2"]


def test_rootless_empty_storage_opts_appends_nothing(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.write(
        sb.override,
        '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nignore_chown_errors = "true"\n',
    )
    sb.monkeypatch.setenv("STORAGE_OPTS", "")
    assert default_store_options().driver_options == []


def test_rootless_user_file_resets_options(sb: Sandbox) -> None:
    sb.rootless(uid=1000)
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.write(sb.override, '[storage]\ndriver = "overlay"\n[storage.options]\npull_options = {a = "b"}\n')
    sb.write(sb.home / ".config/containers/storage.conf", '[storage]\ndriver = "vfs"\n')
    opts = default_store_options()
    assert opts.driver_name == "vfs"
    assert opts.pull_options == {}
    assert opts.run_root == str(sb.root / "rt/containers")
    assert opts.graph_root == str(sb.home / ".local/share/containers/storage")


def test_rootless_user_file_rootless_storage_path_fills_graphroot(sb: Sandbox) -> None:
    sb.rootless(uid=1000)
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    sb.monkeypatch.setenv("XDG_CONFIG_HOME", str(sb.root / "cfg"))
    sb.write(sb.root / "cfg/containers/storage.conf", '[storage]\nrootless_storage_path = "/data/$UID"\n')
    opts = default_store_options()
    assert opts.graph_root == "/data/1000"
    assert opts.rootless_storage_path == "/data/1000"


def test_rootless_programmatic_file_keeps_all_options(sb: Sandbox) -> None:
    sb.rootless()
    sb.monkeypatch.setenv("XDG_RUNTIME_DIR", str(sb.root / "rt"))
    set_default_config_file_path(
        conf(
            sb,
            '[storage]\ndriver = "overlay"\nimagestore = "/img"\n[storage.options.overlay]\nmountopt = "nodev"\n',
        )
    )
    opts = default_store_options()
    assert opts.driver_options == ["overlay.mountopt=nodev"]
    assert opts.image_store == "/img"


# --------------------------------------------------------------------------
# cli_store_options


def test_cli_without_store_flags_uses_defaults(sb: Sandbox) -> None:
    sb.write(sb.system, DEBIAN_CONF)
    opts = cli_store_options(None, None, None, [], "/img", True)
    assert opts == default_store_options()
    assert opts.image_store == "" and not opts.transient_store


def test_cli_with_graph_only(sb: Sandbox) -> None:
    sb.write(sb.system, DEBIAN_CONF)
    sb.monkeypatch.setenv("STORAGE_DRIVER", "vfs")
    sb.monkeypatch.setenv("STORAGE_OPTS", "vfs.x=1")
    sb.monkeypatch.chdir(sb.root)
    opts = cli_store_options("g", None, None, [], "img", True)
    assert opts.graph_root == str(sb.root / "g")
    assert opts.run_root == "/run/containers/storage"
    assert opts.image_store == str(sb.root / "img")
    assert opts.transient_store
    assert (opts.driver_name, opts.driver_options) == ("", [])  # environment not consulted


def test_cli_with_run_only(sb: Sandbox) -> None:
    opts = cli_store_options("", "/r/./x", None, [], None, False)
    assert (opts.run_root, opts.graph_root) == ("/r/x", sb.graph_root)


def test_cli_with_driver_and_options_only(sb: Sandbox) -> None:
    sb.write(sb.system, DEBIAN_CONF)
    opts = cli_store_options(None, None, "vfs", ["vfs.imagestore=/a"], None, False)
    # Neither root: left empty, opening the store reports IncompleteOptions.
    assert (opts.run_root, opts.graph_root) == ("", "")
    assert (opts.driver_name, opts.driver_options) == ("vfs", ["vfs.imagestore=/a"])
    assert opts.pull_options == {}


def test_cli_with_everything(sb: Sandbox) -> None:
    opts = cli_store_options("/g", "/r", "overlay", ["overlay.mountopt=nodev"], None, False)
    assert opts == StoreOptions(
        run_root="/r", graph_root="/g", driver_name="overlay", driver_options=["overlay.mountopt=nodev"]
    )
