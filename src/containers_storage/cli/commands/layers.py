"""Layer commands: layers, layer, create-layer, delete-layer, layer-parent-owners, layer data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import StorageError
from ..context import Action, CommandError, Context, go_list
from ..flags import bool_flag, list_flag, string_flag
from . import ID_MAPPING, JSON, id_mapping, sorted_map

if TYPE_CHECKING:
    from ...records import Container, Image, Layer


# -- layers


def _layers(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    layers = store.layers()
    if ctx.json:
        ctx.emit_records(layers)
        return 0
    images_by_layer: dict[str, list[Image]] = {}
    try:
        for image in store.images():
            for layer_id in (image.top_layer, *image.mapped_top_layers):
                images_by_layer.setdefault(layer_id, []).append(image)
    except StorageError:
        pass
    container_by_layer: dict[str, Container] = {}
    try:
        for container in store.containers():
            container_by_layer[container.layer] = container
    except StorageError:
        pass

    if ctx.flag("tree"):
        nodes = []
        for layer in layers:
            node = _Node(layer.parent or "(base)", layer.id)
            node.notes.extend(f"name: {name}" for name in layer.names)
            if layer.mount_point:
                node.notes.append(f"mount: {layer.mount_point}")
            for image in images_by_layer.get(layer.id, ()):
                node.notes.append(f"image: {image.id}")
                node.notes.extend(f"image name: {name}" for name in image.names)
            ctr = container_by_layer.get(layer.id)
            if ctr is not None:
                node.notes.append(f"container: {ctr.id}")
                node.notes.extend(f"container name: {name}" for name in ctr.names)
            nodes.append(node)
        ctx.out("".join(tree_lines(nodes)))
        return 0

    quick = ctx.flag("quick")
    lines: list[str] = []
    for layer in layers:
        lines.append(f"{layer.id}\n")
        if quick:
            continue
        lines.extend(f"\tname: {name}\n" for name in layer.names)
        for image in images_by_layer.get(layer.id, ()):
            lines.append(f"\timage: {image.id}\n")
            lines.extend(f"\t\tname: {name}\n" for name in image.names)
        ctr = container_by_layer.get(layer.id)
        if ctr is not None:
            lines.append(f"\tcontainer: {ctr.id}\n")
            lines.extend(f"\t\tname: {name}\n" for name in ctr.names)
    ctx.out("".join(lines))
    return 0


layers = Action(_layers, (
    bool_flag(("-tree", "t"), "tree", "Use a tree"),
    bool_flag(("-quick", "q"), "quick", "Just the IDs"),
    JSON,
), driver=False)


# -- the tree drawing of `layers -t`

_STEP = 2  # columns per level


class _Node:
    __slots__ = ("left", "notes", "right")

    def __init__(self, left: str, right: str, notes: list[str] | None = None) -> None:
        self.left = left  # parent ID or "(base)"
        self.right = right  # layer ID
        self.notes: list[str] = notes if notes is not None else []


def _select_root(nodes: list[_Node]) -> str:
    """A parent that is nobody's child, preferring the one with the fewest children.

    Upstream walks a Go map here, so ties come out in random order; first-seen wins here.
    """
    children: dict[str, int] = {}
    is_child = {node.right for node in nodes}
    for node in nodes:
        children[node.left] = children.get(node.left, 0) + 1
    favorite = ""
    for left, count in children.items():
        if left in is_child:
            continue
        if not favorite or count < children[favorite]:
            favorite = left
    return favorite


def _subtree(root: str, nodes: list[_Node], indent: int, continued: list[int], out: list[str]) -> list[_Node]:
    leftovers = [node for node in nodes if node.left != root]
    children = [node for node in nodes if node.left == root]
    for n, child in enumerate(children):
        columns = [" "] * indent
        for column in continued:
            columns[column] = "\u2502"
        prefix = "".join(columns)
        last = n == len(children) - 1
        header, note_header = ("\u2514", " ") if last else ("\u251c", "\u2502")
        out.append(f"{prefix}{header}{chr(0x2500) * (_STEP - 1)}{child.right}\n")
        out.extend(f"{prefix}{note_header}{' ' * (_STEP - 1)}{note}\n" for note in child.notes)
        leftovers = _subtree(child.right, leftovers, indent + _STEP,
                             continued if last else [*continued, indent], out)
    return leftovers


def tree_lines(nodes: list[_Node]) -> list[str]:
    """Lines of the tree for (parent, child, notes) nodes, as upstream's ``printTree``."""
    out: list[str] = []
    while nodes:
        root = _select_root(nodes)
        out.append(f"{root}\n")
        remaining = _subtree(root, nodes, 0, [], out)
        if len(remaining) == len(nodes):
            break
        nodes = remaining
    return out


# -- layer


def _layer(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    matched = []
    for arg in args:
        try:
            matched.append(store.layer(arg))
        except StorageError:
            pass
    if ctx.json:
        ctx.emit_records(matched)
    else:
        lines: list[str] = []
        for layer in matched:
            lines.append(f"ID: {layer.id}\n")
            lines.extend(f"UID mapping: (container={m.container_id}, host={m.host_id}, size={m.size})\n"
                         for m in layer.uidmap)
            lines.extend(f"GID mapping: (container={m.container_id}, host={m.host_id}, size={m.size})\n"
                         for m in layer.gidmap)
            if layer.parent:
                lines.append(f"Parent: {layer.parent}\n")
            lines.extend(f"Name: {name}\n" for name in layer.names)
            if layer.read_only:
                lines.append("Read Only: true\n")
        ctx.out("".join(lines))
    return 0 if len(matched) == len(args) else 1


layer = Action(_layer, (JSON,))


# -- create-layer


def new_layer_arguments(ctx: Context, args: list[str]) -> dict[str, Any]:
    """The keyword arguments of create_layer/put_layer that create-layer and import-layer share."""
    mapping = id_mapping(ctx)
    from ...creation import LayerOptions

    return {
        "id": ctx.text("id") or None,
        "parent": args[0] if args else None,
        "names": ctx.texts("names"),
        "mount_label": ctx.text("label"),
        "writeable": not ctx.flag("readonly"),
        "options": LayerOptions(id_mapping=mapping) if mapping is not None else None,
    }


def print_new_layer(ctx: Context, new: Layer) -> int:
    if ctx.json:
        ctx.emit_record(new)
    else:
        ctx.out(f"{new.id}\n" + "".join(f"\t{name}\n" for name in new.names))
    return 0


NEW_LAYER_FLAGS = (
    string_flag(("-label", "l"), "label", "Mount Label"),
    list_flag(("-name", "n"), "names", "Layer name"),
    string_flag(("-id", "i"), "id", "Layer ID"),
    bool_flag(("-readonly", "r"), "readonly", "Mark as read-only"),
    JSON,
    *ID_MAPPING,
)


def _create_layer(ctx: Context, args: list[str]) -> int:
    return print_new_layer(ctx, ctx.store.create_layer(**new_layer_arguments(ctx, args)))


create_layer = Action(_create_layer, NEW_LAYER_FLAGS)


# -- delete-layer


def _delete_layer(ctx: Context, args: list[str]) -> int:
    results: dict[str, str] = {}
    for arg in args:
        try:
            ctx.store.delete_layer(arg)
            results[arg] = ""
        except StorageError as exc:
            results[arg] = str(exc)
    return report_deletions(ctx, results)


def report_deletions(ctx: Context, results: dict[str, str]) -> int:
    """Print ``{ARG: error-or-""}`` as JSON, or the failures on stderr; 1 if any failed."""
    if ctx.json:
        ctx.emit_json(sorted_map(dict(results)))
    else:
        ctx.stdout.flush()
        ctx.err("".join(f"{what}: {error}\n" for what, error in results.items() if error))
    return 1 if any(results.values()) else 0


delete_layer = Action(_delete_layer, (JSON,))


# -- layer-parent-owners


def parent_owners_json(ident: str, uids: list[int], gids: list[int]) -> dict[str, object]:
    return {"ID": ident, "UIDs": uids or None, "GIDs": gids or None}


def _layer_parent_owners(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    matched = []
    for arg in args:
        try:
            matched.append(store.layer(arg))
        except StorageError:
            pass
    for found in matched:
        try:
            uids, gids = store.layer_parent_owners(found.id)
        except StorageError as exc:
            raise CommandError(f"LayerParentOwner: {exc}") from exc
        if ctx.json:
            ctx.emit_json(parent_owners_json(found.id, list(uids), list(gids)))
        else:
            ctx.out(f"ID: {found.id}\n")
            if uids:
                ctx.out(f"UIDs: {go_list(list(uids))}\n")
            if gids:
                ctx.out(f"GIDs: {go_list(list(gids))}\n")
    return 0 if len(matched) == len(args) else 1


layer_parent_owners = Action(_layer_parent_owners, (JSON,))


# -- layer big data


def _list_layer_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    names = store.list_layer_big_data(store.layer(args[0]).id)
    if ctx.json:
        ctx.emit_json(list(names) or None)
    else:
        ctx.out("".join(f"{name}\n" for name in names))
    return 0


list_layer_data = Action(_list_layer_data, (JSON,))


def _get_layer_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ident = store.layer(args[0]).id
    path = ctx.text("file")
    if path:
        with open(path, "wb") as f:  # created before the lookup, as upstream does
            f.write(store.layer_big_data(ident, args[1]))
    else:
        ctx.out_bytes(store.layer_big_data(ident, args[1]))
    return 0


get_layer_data = Action(_get_layer_data, (string_flag(("-file", "f"), "file", "Write data to file"),))


def _set_layer_data(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    ident = store.layer(args[0]).id
    store.set_layer_big_data(ident, args[1], ctx.read_input(ctx.text("file")))
    return 0


set_layer_data = Action(_set_layer_data, (string_flag(("-file", "f"), "file", "Read data from file"),))
