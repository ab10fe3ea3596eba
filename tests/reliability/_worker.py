"""A store client for crash tests: random operations, each acknowledged in a log once done.

Run as ``python _worker.py GRAPH RUN DRIVER ACKLOG SEED``; it loops until killed.  A line
is appended to ACKLOG (and flushed) only after the operation returned, so every line names
an operation the store must remember after any crash.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
import tarfile

from containers_storage import Store, StoreOptions
from containers_storage.errors import StorageError


def small_tar(rng: random.Random) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(rng.randint(1, 6)):
            data = rng.randbytes(rng.randint(0, 20000))
            info = tarfile.TarInfo(f"d{rng.randint(0, 3)}/f{i}")
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> None:
    graph, run, driver, acklog, seed = sys.argv[1:6]
    rng = random.Random(int(seed))
    store = Store.open(StoreOptions(graph_root=graph, run_root=run, driver_name=driver))
    log = open(acklog, "a", buffering=1)

    def ack(**entry: object) -> None:
        log.write(json.dumps(entry) + "\n")
        log.flush()

    container_layers = {c.layer for c in store.containers()}
    layers: list[str] = [layer.id for layer in store.layers() if layer.id not in container_layers]
    images: list[str] = [image.id for image in store.images()]
    counter = 0
    while True:
        counter += 1
        op = rng.choice(["layer", "layer", "image", "bigdata", "container", "names", "delete-image",
                         "delete-container", "mount"])
        try:
            if op == "layer":
                parent = rng.choice(layers) if layers and rng.random() < 0.5 else None
                data = small_tar(rng)
                layer, _ = store.put_layer(parent=parent, names=[f"l{seed}-{counter}"], diff=io.BytesIO(data))
                layers.append(layer.id)
                ack(op="layer", id=layer.id, digest="sha256:" + hashlib.sha256(data).hexdigest(),
                    name=f"l{seed}-{counter}")
            elif op == "image" and layers:
                image = store.create_image(names=[f"i{seed}-{counter}"], top_layer=rng.choice(layers))
                images.append(image.id)
                ack(op="image", id=image.id, name=f"i{seed}-{counter}")
            elif op == "bigdata" and images:
                image_id = rng.choice(images)
                data = rng.randbytes(rng.randint(1, 5000))
                key = f"key{rng.randint(0, 5)}"  # a small pool: many writes replace an item
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                # Announced first: a kill between here and the ack may leave either value.
                ack(op="begin-bigdata", id=image_id, key=key, digest=digest)
                store.set_image_big_data(image_id, key, data)
                ack(op="bigdata", id=image_id, key=key, digest=digest)
            elif op == "container" and images:
                ctr = store.create_container(names=[f"c{seed}-{counter}"], image=rng.choice(images))
                ack(op="container", id=ctr.id, layer=ctr.layer, name=f"c{seed}-{counter}")
            elif op == "names" and layers:
                layer_id = rng.choice(layers)
                store.add_names(layer_id, [f"n{seed}-{counter}"])
                ack(op="names", id=layer_id, name=f"n{seed}-{counter}")
            elif op == "delete-container":
                ctrs = store.containers()
                if ctrs:
                    victim = rng.choice(ctrs)
                    # Announced first: if we die mid-way, the container may or may not be gone.
                    ack(op="begin-delete", ids=[victim.id, victim.layer])
                    store.delete_container(victim.id)
                    ack(op="delete-container", id=victim.id, layer=victim.layer)
            elif op == "delete-image" and images:
                victim_id = images.pop(rng.randrange(len(images)))
                try:
                    doomed = store.delete_image(victim_id, commit=False)
                    ack(op="begin-delete", ids=[victim_id, *doomed])
                    removed = store.delete_image(victim_id)
                except StorageError:
                    images.append(victim_id)  # in use by a container
                else:
                    layers[:] = [x for x in layers if x not in removed]
                    ack(op="delete-image", id=victim_id, layers=removed)
            elif op == "mount" and layers and driver == "vfs":
                layer_id = rng.choice(layers)
                store.mount(layer_id)
                store.unmount(layer_id)
        except StorageError as exc:
            # Expected refusals only (e.g. deleting an image in use); anything else is a bug.
            print(f"refused: {op}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
