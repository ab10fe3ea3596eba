"""A load generator for the concurrency test: a loop of our Store API calls.

Usage: python _api_worker.py GRAPH RUN DRIVER PREFIX ITERATIONS START_FILE READY_FILE

Prints one JSON object per acknowledged operation on stdout
(``{"op": "create-layer", "t": <unix time>, "name": ..., "id": ...}``) and one ``{"op": "error", ...}``
per exception (then keeps going).  Waits for START_FILE after touching READY_FILE
so that every worker starts at the same moment.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def main() -> int:
    graph, run, driver, prefix, iterations, start_file, ready_file = sys.argv[1:8]
    from containers_storage import Store, StoreOptions

    store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name=driver))

    def ack(op: str, **fields: str) -> None:
        print(json.dumps({"op": op, "t": time.time(), **fields}), flush=True)

    open(ready_file, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(start_file):
        if time.monotonic() > deadline:
            ack("error", what="start file never appeared")
            return 1
        time.sleep(0.005)

    live_layers: list[str] = []
    live_images: list[str] = []
    for i in range(int(iterations)):
        name = f"{prefix}-{i}"
        step = "create-layer"
        try:
            layer = store.create_layer(names=[name])
            ack("create-layer", name=name, id=layer.id)
            step = "add-names"
            store.add_names(layer.id, [f"{name}-alias"])
            ack("add-names", name=f"{name}-alias", id=layer.id)
            live_layers.append(layer.id)
            if i % 3 == 2:
                step = "delete-layer"
                victim = live_layers.pop(0)
                store.delete_layer(victim)
                ack("delete-layer", id=victim)
            if i % 4 == 3:
                step = "create-image"
                image = store.create_image(names=[f"{prefix}-img-{i}"], metadata=name)
                ack("create-image", name=f"{prefix}-img-{i}", id=image.id)
                live_images.append(image.id)
            if i % 8 == 7:
                step = "delete-image"
                victim = live_images.pop(0)
                store.delete_image(victim)
                ack("delete-image", id=victim)
        except Exception as exc:
            ack("error", step=step, name=name, error=f"{type(exc).__name__}: {exc}",
                trace=traceback.format_exc())
    return 0


if __name__ == "__main__":
    sys.exit(main())
