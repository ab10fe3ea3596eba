"""``python -m containers_storage`` runs the ``containers-storage`` command line."""

from __future__ import annotations

from .cli.main import run

if __name__ == "__main__":
    run()
