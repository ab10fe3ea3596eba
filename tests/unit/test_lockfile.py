"""Lock files: fcntl semantics across processes, one fd per path, last-writer token."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from containers_storage.lockfile import get_lockfile, new_writer_id, try_lock_path


def _holder(path: Path, mode: str, seconds: float) -> subprocess.Popen[bytes]:
    """A separate process holding an fcntl lock on *path* (what Go does)."""
    code = (
        "import fcntl,os,sys,time\n"
        f"fd=os.open({str(path)!r}, os.O_RDWR|os.O_CREAT, 0o644)\n"
        f"fcntl.lockf(fd, fcntl.{'LOCK_EX' if mode == 'w' else 'LOCK_SH'})\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def test_writer_id_layout() -> None:
    wid = new_writer_id()
    assert len(wid) == 64
    ns, _counter, pid = struct.unpack("<QQI", wid[:20])
    assert pid == os.getpid() and abs(ns - time.time_ns()) < 10**10


def test_write_lock_waits_for_other_process(tmp_path: Path) -> None:
    path = tmp_path / "layers.lock"
    proc = _holder(path, "w", 0.5)
    lock = get_lockfile(str(path))
    start = time.monotonic()
    with lock.writing():
        waited = time.monotonic() - start
    proc.wait()
    assert waited > 0.2


def test_shared_locks_coexist_with_other_readers(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    proc = _holder(path, "r", 0.3)
    lock = get_lockfile(str(path))
    start = time.monotonic()
    with lock.reading():
        assert time.monotonic() - start < 0.2
    proc.wait()


def test_uses_posix_locks_not_flock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = get_lockfile(str(path))
    with lock.writing():
        code = (f"import fcntl,os\nfd=os.open({str(path)!r}, os.O_RDWR)\n"
                "try:\n fcntl.lockf(fd, fcntl.LOCK_EX|fcntl.LOCK_NB); print('got')\n"
                "except OSError: print('busy')\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "busy"


def test_one_descriptor_per_path_and_nesting(tmp_path: Path) -> None:
    path = str(tmp_path / "c.lock")
    a = get_lockfile(path)
    assert get_lockfile(path) is a
    with a.writing(), a.writing(), a.reading():
        assert a.locked_for_writing
    assert a._fd is None  # closed after the last release


def test_threads_exclude_each_other(tmp_path: Path) -> None:
    lock = get_lockfile(str(tmp_path / "t.lock"))
    inside = 0
    peak = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        for _ in range(50):
            with lock.writing():
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1


def test_last_writer_token(tmp_path: Path) -> None:
    path = tmp_path / "l.lock"
    lock = get_lockfile(str(path))
    with lock.reading():
        assert lock.modified()  # first look always counts as a change
        assert not lock.modified()
    with lock.writing():
        token = lock.record_write()
    assert path.read_bytes() == token
    with lock.reading():
        assert not lock.modified()
    # Another writer (any content, even 1.41's 64 hex chars) means "reload".
    path.write_bytes(b"f" * 64)
    with lock.reading():
        assert lock.modified()


def test_try_lock_path(tmp_path: Path) -> None:
    p = str(tmp_path / "lock-1")
    fd = try_lock_path(p)
    assert fd is not None
    proc = subprocess.run([sys.executable, "-c",
                           "import sys;from containers_storage.lockfile import try_lock_path;"
                           f"print(try_lock_path({p!r}) is None)"], capture_output=True, text=True)
    assert proc.stdout.strip() == "True"
    os.close(fd)
