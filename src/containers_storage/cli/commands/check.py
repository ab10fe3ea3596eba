"""``check``: report (and with ``-r``/``-f`` repair) damage in the store (upstream 1.47)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import StorageError
from ..context import Action, CommandError, Context, error_text
from ..flags import bool_flag, string_flag
from . import JSON

if TYPE_CHECKING:
    from ...check import CheckReport


def _check(ctx: Context, args: list[str]) -> int:
    store = ctx.store
    try:
        return _run(ctx)
    finally:
        # Upstream defers a forced Shutdown, whatever happened.
        try:
            store.shutdown(force=True)
        except (StorageError, OSError) as exc:
            ctx.err(f"shutdown: {error_text(exc)}\n")


def _run(ctx: Context) -> int:
    from ...check import check_everything, check_most, parse_go_duration

    force = ctx.flag("force")
    repair = ctx.flag("repair") or force
    options = check_most() if ctx.flag("quick") else check_everything()
    max_age = ctx.text("max")
    if max_age:
        try:
            options.layer_unreferenced_max_age = parse_go_duration(max_age)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
    from ..progress import Progress

    progress = Progress(ctx.stderr, "checking layers")
    try:
        report = ctx.store.check(options, on_progress=progress.count)
    finally:
        progress.done()
    if ctx.json:
        ctx.emit_json(_report_json(report))
    else:
        ctx.out(_report_text(report))
    if not repair:
        if report:
            raise CommandError(report.summary())
        return 0
    failures = ctx.store.repair(report, remove_containers=force)
    if failures:
        if ctx.json:
            ctx.emit_json([{} for _ in failures])  # Go encodes error values as {}
        else:
            ctx.err("".join(f"{failure}\n" for failure in failures))
        raise CommandError(str(failures[0]))
    if report.ro_layers or report.ro_images or (not force and report.containers):
        if force:
            raise CommandError(f"{len(report.ro_layers)} read-only layer errors, "
                               f"{len(report.ro_images)} read-only image errors")
        raise CommandError(f"{len(report.ro_layers)} read-only layer errors, "
                           f"{len(report.ro_images)} read-only image errors, "
                           f"{len(report.containers)} container errors")
    return 0


def _sections(report: CheckReport) -> tuple[tuple[str, str, dict[str, list[StorageError]]], ...]:
    return (("Layers", "layer", report.layers), ("ROLayers", "read-only layer", report.ro_layers),
            ("Images", "image", report.images), ("ROImages", "read-only image", report.ro_images),
            ("Containers", "container", report.containers))


def _report_text(report: CheckReport) -> str:
    """``layer ID:`` then one `` <error>`` line per problem, for each kind (IDs sorted)."""
    lines: list[str] = []
    for _key, label, problems in _sections(report):
        for object_id in sorted(problems):
            errors = problems[object_id]
            if errors:
                lines.append(f"{label} {object_id}:\n")
            lines += [f" {error}\n" for error in errors]
    return "".join(lines)


def _report_json(report: CheckReport) -> dict[str, object]:
    """Go's encoding of the report: exported maps only, each error as ``{}``."""
    return {key: {object_id: [{} for _ in problems[object_id]] for object_id in sorted(problems)}
            for key, _label, problems in _sections(report)}


check = Action(_check, (
    JSON,
    string_flag(("-max", "m"), "max", "Maximum allowed age for unreferenced layers", "24h"),
    bool_flag(("-repair", "r"), "repair", "Remove damaged images and layers"),
    bool_flag(("-force", "f"), "force", "Remove damaged containers"),
    bool_flag(("-quick", "q"), "quick", "Perform only quick checks"),
))
