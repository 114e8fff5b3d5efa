"""`politikpi docs`: docs/kpis.md's table reference, generated from the models' .toml files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import EXIT_ERROR, console, fail


def docs(
    out: Annotated[Path | None, typer.Option(metavar="FILE", help="Where to write (default: docs/kpis.md of the repository). The hand-written prose is read from the repository's docs/kpis.md.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Write nothing: exit 1, naming the file, when it differs from what the models generate (for CI and tests).")] = False,
) -> None:
    """Regenerate the table reference in docs/kpis.md from the models' .toml files.

    Each published model (sql/marts/, sql/kpi/, sql/national/) has a block between the markers
    '<!-- generated from sql/<folder>/<model>.toml: edit the .toml, then make docs -->' and
    '<!-- end generated -->': its description, key, which keys may be NULL and what NULL means,
    every column with its comment, and the audit's bounds and allowed values. Everything outside
    the markers is hand-written and kept. To change a table's documentation, edit its .toml (the
    same text is the release's COMMENT ON), then run `make docs`."""
    from flows.files import write_text_atomic
    from flows.transform.docs import KPIS_MD, DocsError, render
    from flows.transform.models import MetadataError

    target = out or KPIS_MD
    try:
        text = render(KPIS_MD.read_text(encoding="utf-8"))
    except (DocsError, MetadataError) as exc:
        fail(str(exc))
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            fail(f"{target} differs from what the models' .toml files generate: run `make docs` "
                 "(or `politikpi docs`) and commit it", EXIT_ERROR)
        console.print(f"[bold green]OK[/]: {target} is what the models generate", soft_wrap=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    changed = not target.is_file() or target.read_text(encoding="utf-8") != text
    write_text_atomic(target, text)
    console.print(f"[bold green]OK[/]: {'wrote' if changed else 'unchanged:'} {target}", soft_wrap=True)
