"""overlay_diff against GNU ``tar -c`` on the same tree (run by hand).

    python benchmarks/export_bench.py [--files 6000] [--mib 120] [--dir /dev/shm]

Builds a tree of ~6,000 files / ~120 MB (a mix of small and large files in
nested directories), then times writing an uncompressed tar of it to /dev/null
with our overlay_diff and with ``tar -c --numeric-owner`` (best of 3 each) and
prints the ratio.  The page cache is warm for both.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time

from containers_storage.archive.export import overlay_diff


def build_tree(root: str, files: int, total_mib: int) -> int:
    rng = random.Random(42)
    big = max(1, files // 200)  # a few large files carry most of the bytes
    small_total = total_mib * (1 << 20) // 4
    big_size = (total_mib * (1 << 20) - small_total) // big
    small_size = small_total // max(1, files - big)
    written = 0
    block = os.urandom(1 << 20)
    for i in range(files):
        d = os.path.join(root, f"d{i % 40:02d}", f"s{i % 7}")
        os.makedirs(d, exist_ok=True)
        size = big_size if i < big else rng.randint(small_size // 2, small_size * 3 // 2)
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            left = size
            while left:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
        written += size
    return written


def best_of(n: int, fn: object) -> float:
    assert callable(fn)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=6000)
    parser.add_argument("--mib", type=int, default=120)
    parser.add_argument("--dir", default=None, help="where to build the tree (default: a temp dir)")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="export-bench-", dir=args.dir)
    try:
        root = os.path.join(base, "diff")
        os.mkdir(root)
        size = build_tree(root, args.files, args.mib)
        print(f"tree: {args.files} files, {size / (1 << 20):.1f} MiB in {root}")

        def ours() -> None:
            with open(os.devnull, "wb") as out:
                overlay_diff(root, [], out)

        def gnu_tar_pipe() -> None:
            # GNU tar skips reading file data when its archive is /dev/null: pipe through cat.
            subprocess.run(
                ["sh", "-c", 'tar -c --numeric-owner -C "$1" . | cat > /dev/null', "sh", root], check=True
            )

        ours()  # warm the page cache
        t_ours = best_of(3, ours)
        t_tar = best_of(3, gnu_tar_pipe)
        print(f"overlay_diff : {t_ours:.3f} s ({size / t_ours / (1 << 20):.0f} MiB/s)")
        print(f"GNU tar -c   : {t_tar:.3f} s ({size / t_tar / (1 << 20):.0f} MiB/s)")
        print(f"ratio ours/tar: {t_ours / t_tar:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
