"""Mutants: one small plausible bug each, planted in a copy of a file.

SQL is mutated on its parsed tree (sqlglot), never as text, and written back in DuckDB's dialect;
Python (the input rules in schemas/, disclosure, the failure threshold) on its syntax tree (ast).
A mutant's `name` is stable while its file changes elsewhere: the file, the code it changes, the
code it becomes, and which occurrence of that change in the file (`#2`) when there are several.
"""

from __future__ import annotations

import ast
import copy
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

ROOT = Path(__file__).resolve().parent.parent

# What the run mutates (issue 24): every KPI rule in SQL, the input rules, disclosure, the threshold.
SQL_FOLDERS = ("sql/macros", "sql/staging", "sql/intermediate", "sql/marts", "sql/kpi", "sql/national")
PYTHON_FILES = ("schemas/common.py", "schemas/reports.py", "schemas/dispatches.py", "schemas/outreach.py",
                "schemas/ambassadors.py", "flows/release/disclosure.py", "flows/ingest/threshold.py",
                "flows/config.py")
# Where only part of a file decides numbers: the functions, classes or settings mutated there (the
# rest words messages, tested by the slow tier's message tests).
PYTHON_SCOPE = {"flows/ingest/threshold.py": ("threshold_summary",),
                "flows/config.py": ("max_quarantine_share", "min_rows_for_threshold")}
TIMEZONES = {"europe/copenhagen": "UTC", "utc": "Europe/Copenhagen"}


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the project root
    line: int
    operator: str
    before: str
    after: str
    occurrence: int
    text: str  # the whole mutated file

    @property
    def name(self) -> str:
        tail = f" #{self.occurrence}" if self.occurrence > 1 else ""
        return f"{self.file}: {self.before} -> {self.after}{tail}"


# --- SQL ------------------------------------------------------------------------------------------------------

FLIPS = {exp.LT: exp.LTE, exp.LTE: exp.LT, exp.GT: exp.GTE, exp.GTE: exp.GT, exp.EQ: exp.NEQ, exp.NEQ: exp.EQ,
         exp.Min: exp.Max, exp.Max: exp.Min, exp.ArgMin: exp.ArgMax, exp.ArgMax: exp.ArgMin}


def _sql_variants(node: exp.Expression) -> Iterator[tuple[str, Callable[[exp.Expression], exp.Expression]]]:
    """(operator, function turning a copy of node into its mutant) for each mutation node admits."""
    kind = type(node)
    if kind in FLIPS and kind not in (exp.Min, exp.Max) or kind in (exp.Min, exp.Max) and not node.expressions:
        target = FLIPS[kind]
        op = "swap min/max" if kind in (exp.Min, exp.Max, exp.ArgMin, exp.ArgMax) else "flip comparison"
        yield op, lambda n, t=target: t(**n.args)
    elif isinstance(node, exp.Ordered):
        yield "flip order", lambda n: n.set("desc", not n.args.get("desc")) or n
    elif isinstance(node, (exp.PercentileCont, exp.PercentileDisc)):
        target = exp.PercentileDisc if isinstance(node, exp.PercentileCont) else exp.PercentileCont
        yield "swap quantile", lambda n, t=target: t(**n.args)
    elif isinstance(node, exp.Quantile):
        # quantile(x, q) is DuckDB's quantile_disc
        yield "swap quantile", lambda n: exp.PercentileCont(this=n.this, expression=n.args.get("quantile"))
    elif isinstance(node, exp.Median):
        yield "swap quantile", lambda n: exp.Anonymous(this="quantile_disc",
                                                       expressions=[n.this, exp.Literal.number(0.5)])
    elif isinstance(node, exp.Anonymous) and node.name.lower() in ("quantile_cont", "quantile_disc"):
        other = "quantile_disc" if node.name.lower() == "quantile_cont" else "quantile_cont"
        yield "swap quantile", lambda n, o=other: exp.Anonymous(this=o, expressions=n.expressions)
    elif isinstance(node, exp.Literal) and node.is_number:
        yield "nudge number", _nudge
    elif isinstance(node, exp.Literal) and node.is_string and node.this.lower() in TIMEZONES:
        yield "swap timezone", lambda n: exp.Literal.string(TIMEZONES[n.this.lower()])
    elif isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
        yield "count(distinct) -> count", lambda n: exp.Count(this=n.this.expressions[0])
    elif isinstance(node, exp.Count) and node.this is not None and not isinstance(node.this, exp.Star):
        yield "count -> count(distinct)", lambda n: exp.Count(this=exp.Distinct(expressions=[n.this]))
    elif isinstance(node, exp.And) and _is_condition(node):
        yield "drop conjunct", lambda n: n.left
        yield "drop conjunct", lambda n: n.right


def _nudge(node: exp.Literal) -> exp.Expression:
    text = node.this
    if "." in text or "e" in text.lower():
        value = float(text)
        return exp.Literal.number(f"{value * 1.1:.6g}" if value else "0.1")
    return exp.Literal.number(int(text) + 1)


def _is_condition(node: exp.And) -> bool:
    """An AND in a where, having, join, qualify, or a CASE's WHEN (not in what a WHEN gives)."""
    top = node
    while isinstance(top.parent, (exp.And, exp.Paren)):
        top = top.parent
    clause = top.parent
    return isinstance(clause, (exp.Where, exp.Having, exp.Join, exp.Qualify)) or (
        isinstance(clause, exp.If) and clause.this is top)


def _line(node: exp.Expression, default: int) -> int:
    lines = [n.meta["line"] for n in node.walk() if n.meta and "line" in n.meta]
    return min(lines) if lines else default


def _names(before: str, after: str, width: int = 70) -> tuple[str, str]:
    """Before and after for a mutant's name: whole when short, else cut around where they differ
    (a cut at a fixed width could hide the change, or make two mutants one)."""
    before, after = " ".join(before.split()), " ".join(after.split())
    if max(len(before), len(after)) <= width:
        return before, after
    differs = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
                   min(len(before), len(after)))
    start = max(0, differs - 20)

    def cut(text: str) -> str:
        return ("..." if start else "") + text[start:start + width] + ("..." if len(text) > start + width else "")

    return cut(before), cut(after)


def sql_text(trees: list[exp.Expression]) -> str:
    """Statements written back in DuckDB's dialect (a model is one; sql/macros/ files hold several)."""
    text = ";\n\n".join(tree.sql(dialect="duckdb", pretty=True) for tree in trees)
    return text + ("\n" if len(trees) == 1 else ";\n")


def sql_mutants(path: Path, root: Path = ROOT) -> Iterator[Mutant]:
    """Every mutant of one SQL file, in the order of its trees."""
    trees = [t for t in sqlglot.parse(path.read_text(encoding="utf-8"), read="duckdb") if t is not None]
    rel = str(path.relative_to(root))
    seen: Counter = Counter()
    last_line = 1
    for which, tree in enumerate(trees):
        for index, node in enumerate(tree.walk()):
            last_line = _line(node, last_line)
            for operator, change in _sql_variants(node):
                mutated = [t.copy() for t in trees]
                target = list(mutated[which].walk())[index]
                # a literal alone says little: name it with the expression around it
                shown = target.parent if isinstance(target, exp.Literal) and target.parent else None
                full = (shown or target).sql(dialect="duckdb")
                replacement = change(target)
                if replacement is not target:
                    target.replace(replacement)
                now = (shown or replacement).sql(dialect="duckdb")
                if now == full:
                    continue
                before, after = _names(full, now)
                seen[(before, after)] += 1
                yield Mutant(rel, last_line, operator, before, after, seen[(before, after)], sql_text(mutated))


def sql_files(root: Path = ROOT, folders=SQL_FOLDERS) -> list[Path]:
    return [p for folder in folders for p in sorted((root / folder).glob("*.sql"))]


# --- Python ---------------------------------------------------------------------------------------------------

PY_FLIPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.And: ast.Or, ast.Or: ast.And,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}


class _Sites(ast.NodeVisitor):
    """Mutation sites of a module, each (node path, operator), skipping docstrings and annotations."""

    def __init__(self):
        self.sites: list[tuple[ast.AST, str]] = []

    def visit_Compare(self, node):
        self.sites += [((node, i), "flip comparison") for i, op in enumerate(node.ops) if type(op) in PY_FLIPS]
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        self.sites.append(((node, None), "flip and/or"))
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, bool):
            self.sites.append(((node, None), "flip boolean"))
        elif isinstance(node.value, int | float):
            self.sites.append(((node, None), "nudge number"))

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            self.sites.append(((node, None), "swap min/max"))
        self.generic_visit(node)

    def visit_Expr(self, node):  # a docstring is no rule
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node):
        pass


def _apply(site, operator: str) -> str:
    node, i = site
    if operator == "flip comparison":
        before = type(node.ops[i])
        node.ops[i] = PY_FLIPS[before]()
        return ""
    if operator == "flip and/or":
        node.op = PY_FLIPS[type(node.op)]()
    elif operator == "flip boolean":
        node.value = not node.value
    elif operator == "nudge number":
        node.value = node.value + 1 if isinstance(node.value, int) else float(f"{node.value * 1.1:.6g}") or 0.1
    elif operator == "swap min/max":
        node.func.id = "max" if node.func.id == "min" else "min"
    return ""


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _named(node: ast.AST) -> str | None:
    """The name a function, class or annotated setting is known by."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def python_mutants(path: Path, root: Path = ROOT) -> Iterator[Mutant]:
    source = path.read_text(encoding="utf-8")
    rel = str(path.relative_to(root))
    tree = ast.parse(source)
    visitor = _Sites()
    visitor.visit(tree)
    scope = PYTHON_SCOPE.get(rel, ())
    spans = [(n.lineno, n.end_lineno) for n in ast.walk(tree) if _named(n) and _named(n) in scope]
    seen: Counter = Counter()
    for index, ((node, _), operator) in enumerate(visitor.sites):
        if rel in PYTHON_SCOPE and not any(low <= node.lineno <= high for low, high in spans):
            continue
        mutated = copy.deepcopy(tree)
        again = _Sites()
        again.visit(mutated)
        (target, j), _ = again.sites[index]
        # a number or boolean alone says little: name it with the expression around it
        parents = _parents(mutated)
        shown = parents.get(target, target) if isinstance(target, ast.Constant) else target
        if isinstance(shown, ast.keyword):  # strict=False says little: name the call
            shown = parents.get(shown, shown)
        # a field's rule (pa.Field(nullable=False)) reads the same on every field: name its field
        owner = parents.get(shown)
        field = (f"{owner.target.id}: " if isinstance(owner, ast.AnnAssign) and owner.value is shown
                 and isinstance(owner.target, ast.Name) else "")
        before = field + ast.unparse(shown)
        _apply((target, j), operator)
        before, after = _names(before, field + ast.unparse(shown))
        seen[(before, after)] += 1
        yield Mutant(rel, node.lineno, operator, before, after, seen[(before, after)], ast.unparse(mutated) + "\n")


def all_mutants(root: Path = ROOT, only: tuple[str, ...] = ()) -> list[Mutant]:
    """Every mutant of the mutated files (those under one of `only`'s paths, when given)."""
    def wanted(path: Path) -> bool:
        rel = str(path.relative_to(root))
        return not only or any(rel == o.rstrip("/") or rel.startswith(o.rstrip("/") + "/") for o in only)

    mutants = [m for p in sql_files(root) if wanted(p) for m in sql_mutants(p, root)]
    mutants += [m for f in PYTHON_FILES if wanted(root / f) for m in python_mutants(root / f, root)]
    return mutants
