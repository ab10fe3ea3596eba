"""``_worker.py`` with one durability step switched off: a mutant for the power-cut test.

Run as ``python _power_worker.py MUTANT GRAPH RUN DRIVER ACKLOG SEED``.  The power-cut test
uses it to show that it notices a missing sync (its own check of the harness); MUTANT is
one of:

- ``no-syncfs``: layers are marked complete without ``syncfs`` of their files;
- ``no-fdatasync``: atomic writes rename a file whose data was never synced;
- ``none``: no mutation.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path


def main() -> None:
    mutant, *args = sys.argv[1:]
    from containers_storage import atomicio

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
