"""The warehouse's releases: list them, roll back and unpin, verify and repair, diff two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    Warehouse,
    console,
    err,
    fail,
    require_warehouse,
)


def releases(
    warehouse: Warehouse = Path("warehouse"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest entries as JSON.")] = False,
) -> None:
    """List published releases, oldest first: data through, how each was built (whole, or patched
    from which release), its audit and checksum; * marks the current one."""

    from flows.release.store import load_manifest

    manifest = load_manifest(warehouse)
    if as_json:
        print(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    if not manifest["releases"]:
        console.print(f"no releases in {warehouse}: run `politikpi refresh`")
        return
    pin = (manifest.get("pinned") or {}).get("release_id")
    t = Table(title=f"Releases in {warehouse} (* current{', pinned by a rollback until `politikpi unpin`' if pin else ''})")
    t.add_column("")
    t.add_column("release", no_wrap=True, min_width=29)  # whole, to copy into rollback or diff
    for c in ("data through", "built", "audit", "sha256"):
        t.add_column(c, overflow="fold")
    for r in manifest["releases"]:
        mark = ("*" if r["release_id"] == manifest["current"] else "") + (" pinned" if r["release_id"] == pin else "")
        audit, build = r.get("validation_summary", {}), r.get("build") or {}
        n = build.get("changed_files")
        built = (f"patch of {build.get('base')} ({n} changed file{'' if n == 1 else 's'})"
                 if build.get("kind") == "patch" else build.get("kind", "?"))
        if r.get("code_version"):
            built += f", code {r['code_version']}"
        checks = f"{audit.get('checks', '?')} checks, {audit.get('failed', '?')} failed, {len(audit.get('flagged', []))} flagged"
        if audit.get("restatement"):
            checks += f"; restatement accepted: {audit['restatement']['reason']}"
        t.add_row(mark, r["release_id"], str(r.get("data_through")), built, checks, r["sha256"][:12])
    console.print(t)


def rollback(
    release: Annotated[str, typer.Argument(help="Release id to make current (see `politikpi releases`).")],
    warehouse: Warehouse = Path("warehouse"),
) -> None:
    """Make an earlier release current again (atomic swap of the stable path) and pin it.

    While pinned, `refresh` still ingests and stages new files but publishes nothing (it says so);
    `politikpi unpin` lets the next refresh publish again."""
    from flows.release.releases import rollback as do_rollback

    entry = do_rollback(warehouse, release)
    from flows.release.store import stable_path

    console.print(f"[bold green]OK[/]: {stable_path(warehouse)} is release {entry['release_id']} "
                  f"(data through {entry.get('data_through')}), pinned until `politikpi unpin`", soft_wrap=True)


def verify(warehouse: Warehouse = Path("warehouse")) -> None:
    """Check manifest, release files, their sidecars and the stable path against each other.

    First repairs what an interrupted publish can leave (a stable path behind the manifest, a
    release file that was never listed). Anything else is reported; `politikpi repair` mends
    what can be mended. Exit status 1 when a problem remains."""
    from flows.release.releases import recover, warehouse_lock
    from flows.release.releases import verify as do_verify

    require_warehouse(warehouse)
    with warehouse_lock(warehouse):
        if recover(warehouse):
            console.print("repaired: an interrupted publish (unlisted release file or stale stable path)")
    problems = do_verify(warehouse)
    for problem in problems:
        err.print(f"[red]problem[/]: {problem}", highlight=False)
    if problems:
        fail(f"{len(problems)} problem(s) in {warehouse}; `politikpi repair` mends what can be mended")
    console.print(f"[bold green]OK[/]: every release in {warehouse / 'manifest.json'} matches its checksum "
                  "and the stable path is the current release", soft_wrap=True)


def repair(warehouse: Warehouse = Path("warehouse")) -> None:
    """Rebuild manifest.json from the release files and their sidecars; re-point the stable path.

    Never deletes a release: a release file whose entry was lost is listed again, a changed
    checksum is restored from the release's sidecar, a current or pinned id that is not a release
    is replaced (by the release the stable path holds, else the newest). A release file that itself
    changed after publishing cannot be repaired: it stays listed, never current, and `verify`
    keeps reporting it. Run `politikpi verify` afterwards."""
    from flows.release.releases import repair as do_repair

    require_warehouse(warehouse)
    done = do_repair(warehouse)
    for line in done:
        console.print(f"repaired: {line}", soft_wrap=True, highlight=False)
    console.print(f"[bold green]OK[/]: {'nothing to repair' if not done else f'{len(done)} repair(s)'} in {warehouse}",
                  soft_wrap=True)


def unpin(warehouse: Warehouse = Path("warehouse")) -> None:
    """Lift the pin a rollback set: the next refresh publishes again."""
    from flows.release.releases import unpin as do_unpin

    require_warehouse(warehouse)
    pin = do_unpin(warehouse)
    if pin is None:
        console.print("no release is pinned; nothing to do")
    else:
        console.print(f"[bold green]OK[/]: release {pin['release_id']} is no longer pinned; the next refresh "
                      "publishes what the state holds", soft_wrap=True)


def diff(
    a: Annotated[str, typer.Argument(help="Older release id.")],
    b: Annotated[str, typer.Argument(help="Newer release id.")],
    warehouse: Warehouse = Path("warehouse"),
    limit: Annotated[int, typer.Option(help="Example rows per table.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole diff as JSON.")] = False,
) -> None:
    """Which KPI values changed between two releases, and whether inputs or code changed."""
    from flows.release.releases import diff as do_diff

    result = do_diff(warehouse, a, b, limit)
    if as_json:
        print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
        return
    if result["a_is_newer"]:
        err.print(f"[yellow]WARNING[/]: {a} is newer than {b}: the changes below read backwards "
                  f"(`politikpi diff {b} {a}` for old -> new)", highlight=False)
    console.print(f"code changed: {result['code_changed']} ({' -> '.join(result['code_versions'])})", highlight=False)
    for kind in ("inputs_added", "inputs_removed", "inputs_changed"):
        items = result[kind]
        console.print(f"{kind.replace('_', ' ')}: {len(items)}" + (f" ({', '.join(items[:5])}{' …' if len(items) > 5 else ''})"
                                                                     if items else ""), highlight=False)
    t = Table(title=f"KPI rows {a} -> {b}")
    for c in ("table", "added", "removed", "changed"):
        t.add_column(c, justify="left" if c == "table" else "right")
    for table, d in result["tables"].items():
        t.add_row(table, f"{d['added']:,}", f"{d['removed']:,}", f"{d['changed']:,}")
    console.print(t)
    names = result["municipalities"]
    restated = result["restated"]
    console.print(f"restated values of closed months (kpi_revisions): {len(restated):,}", highlight=False)
    for r in restated[:limit]:
        key = ", ".join(f"{k} {v if v is not None else 'all'}" + (f" {names[str(v)]}" if str(v) in names and k.endswith("municipality_code") else "")
                        for k, v in json.loads(r["key"]).items())
        why = "inputs" if r["inputs_changed"] else "code" if r["code_changed"] else "?"
        console.print(f"  {r['table_name']}.{r['column_name']} {key}: {_cell(r['old_value'])} -> {_cell(r['new_value'])} "
                      f"(release {r['release_id']}, {why} changed)", soft_wrap=True, highlight=False)
    for table, d in result["tables"].items():
        for ex in d["examples"]:
            key = ", ".join(f"{k} {v if v is not None else d['null_means']}" + (f" {names[v]}" if v in names and k.endswith("municipality_code") else "")
                            for k, v in ex["key"].items())
            values = "; ".join(f"{col} {_cell(old)} -> {_cell(new)}" for col, (old, new) in ex["values"].items())
            console.print(f"  {table} {ex['change']}: {key}: {values}", soft_wrap=True, highlight=False)


def _cell(text: str | float | None) -> str:
    """A KPI value as people read it: (none), 1,763, 12.09; dates and words as they are."""
    if text is None:
        return "(none)"
    if isinstance(text, float):
        return f"{text:,.0f}" if text.is_integer() else f"{text:,.2f}"
    try:
        return f"{int(text):,}"
    except ValueError:
        pass
    try:
        return f"{float(text):,.2f}"
    except ValueError:
        return text
