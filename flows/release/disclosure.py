"""Disclosure control for what leaves the police (the report), SPEC section 5.

Primary: a count of 1 or 2 shows as "<3" (0 shows as 0). Secondary: in every row and column that
has a shown total, a hidden cell is never alone: the smallest other non-zero shown cell is hidden
too (shown as ".."; ties go to the lower position, i.e. the lower municipality code or the
earlier row), until nothing changes; where no such cell is left, the total itself is hidden.
A value computed from a hidden count (a rate, a share, a mean) is hidden with it (`hidden_with`).
No solver: the rule is local and the test checks it on every table the report prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PRIMARY, SECONDARY = "<3", ".."


@dataclass
class Grid:
    """A table of counts, cells[r][c]: which cells (`hidden`, of them `primary`) and which row or
    column totals may not be shown. The totals themselves are the caller's (the district's rows)."""

    cells: list[list[int]]
    hidden: set[tuple[int, int]] = field(default_factory=set)
    primary: set[tuple[int, int]] = field(default_factory=set)
    hidden_row_totals: set[int] = field(default_factory=set)
    hidden_col_totals: set[int] = field(default_factory=set)

    def shown(self, r: int, c: int) -> str | int:
        if (r, c) in self.primary:
            return PRIMARY
        return SECONDARY if (r, c) in self.hidden else self.cells[r][c]


def small(value: int | None) -> bool:
    return value is not None and 0 < value < 3


def protect(cells: list[list[int]], *, row_totals: bool, col_totals: bool) -> Grid:
    """Apply primary and secondary suppression to a table of counts (None = no cell, shown empty)."""
    grid = Grid([[v or 0 for v in row] for row in cells])
    grid.primary = {(r, c) for r, row in enumerate(grid.cells) for c, v in enumerate(row) if small(v)}
    grid.hidden = set(grid.primary)
    lines = []
    if row_totals:
        lines += [("row", r, [(r, c) for c in range(len(grid.cells[r]))]) for r in range(len(grid.cells))]
    if col_totals and grid.cells:
        lines += [("col", c, [(r, c) for r in range(len(grid.cells))]) for c in range(len(grid.cells[0]))]
    changed = True
    while changed:
        changed = False
        for kind, index, line in lines:
            total_hidden = index in (grid.hidden_row_totals if kind == "row" else grid.hidden_col_totals)
            if total_hidden or sum(cell in grid.hidden for cell in line) != 1:
                continue
            candidates = [cell for cell in line if cell not in grid.hidden and grid.cells[cell[0]][cell[1]] > 0]
            if candidates:
                grid.hidden.add(min(candidates, key=lambda cell: (grid.cells[cell[0]][cell[1]], cell)))
            else:
                (grid.hidden_row_totals if kind == "row" else grid.hidden_col_totals).add(index)
            changed = True
    return grid


def protect_by_code(counts: dict[int, int | None]) -> tuple[dict[int, str | int], bool]:
    """One column of counts keyed by municipality code, with a shown total below it: each code's
    count as shown, and whether the total must be hidden. The grid runs in code order, so a tie
    goes to the lower code whatever order the table is displayed in (SPEC 5)."""
    codes = sorted(counts)
    grid = protect([[counts[code]] for code in codes], row_totals=False, col_totals=True)
    return {code: grid.shown(i, 0) for i, code in enumerate(codes)}, 0 in grid.hidden_col_totals


def hidden_with(count: int | None, value, hidden: bool = False):
    """A value computed from a count (rate, share, mean): hidden when the count is hidden."""
    if hidden or small(count):
        return SECONDARY
    return value
