"""``_worker.py`` with one durability step switched off: a mutant for the power-cut test.

Run as ``python _power_worker.py MUTANT GRAPH RUN DRIVER ACKLOG SEED``.  The power-cut test
uses it to show that it notices a missing sync (its own check of the harness); MUTANT is
one of:

- ``no-syncfs``: layers are marked complete without ``syncfs`` of their files;
- ``no-fdatasync``: atomic writes rename a file whose data was never synced;
- ``none``: no mutation.

Whatever the mutant, the worker never overwrites an existing image big-data item (see
``no_overwrite``).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

OVERWRITE_SKIPPED = "overwrite of a big-data item skipped"


def main() -> None:
    mutant, *args = sys.argv[1:]
    from containers_storage import Store, atomicio
    from containers_storage.errors import StorageError

    # Never overwrite an image's big-data item: a later worker reusing a key could be cut
    # between writing the file and recording its digest, which leaves the acknowledged digest
    # recorded over different content (test_power_cut.py::test_big_data_overwrite_cut_midway
    # shows that window; here it would only make the random test flaky).
    set_image_big_data = Store.set_image_big_data

    def no_overwrite(self: Store, ref: str, key: str, data: bytes, digest_manifest: object = None) -> None:
        if key in self.list_image_big_data(ref):
            raise StorageError(OVERWRITE_SKIPPED)
        set_image_big_data(self, ref, key, data, digest_manifest)  # type: ignore[arg-type]

    Store.set_image_big_data = no_overwrite  # type: ignore[method-assign]

    if mutant == "no-syncfs":
        atomicio.sync_filesystem = lambda path: None  # type: ignore[assignment]
    elif mutant == "no-fdatasync":
        os.fdatasync = lambda fd: None  # type: ignore[assignment]
    elif mutant != "none":
        raise SystemExit(f"unknown mutant {mutant!r}")
    worker = Path(__file__).with_name("_worker.py")
    sys.argv = [str(worker), *args]
    runpy.run_path(str(worker), run_name="__main__")


if __name__ == "__main__":
    main()
