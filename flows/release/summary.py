"""Run artifacts: what a person reads in the Prefect UI after a refresh. No personal data:
only counts, rule names, file identities, KPI figures and release ids."""

from __future__ import annotations

from pathlib import Path

import duckdb

from flows.config import Settings
from flows.ingest.state import db_path
from flows.release import store
from flows.transform.models import labels


def _headline(stable: Path) -> list[str]:
    with duckdb.connect(str(stable), read_only=True) as con:
        row = con.execute("select * from kpi_year_summary order by year desc limit 1").fetchone()
        cols = [d[0] for d in con.description]
    if not row:
        return ["(no data)"]
    data = dict(zip(cols, row, strict=True))
    lines = [f"| KPI ({data['year']}) | value |", "|---|---:|"]
    for key, label in labels("kpi_year_summary"):
        value = data[key]
        text = "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else f"{value:,}")
        lines.append(f"| {label} | {text} |")
    return lines


def _changes(settings: Settings, release_id: str) -> list[str]:
    from flows.release.releases import diff

    ids = [r["release_id"] for r in store.load_manifest(settings.warehouse)["releases"]]
    if release_id not in ids or ids.index(release_id) == 0:
        return ["First release: nothing to compare with."]
    previous = ids[ids.index(release_id) - 1]
    d = diff(settings.warehouse, previous, release_id, limit=0)
    lines = [f"Compared with {previous}: inputs added {len(d['inputs_added'])}, changed "
             f"{len(d['inputs_changed'])}, removed {len(d['inputs_removed'])}; code changed: {d['code_changed']}.", "",
             "| table | added | removed | changed |", "|---|---:|---:|---:|"]
    lines += [f"| {t} | {v['added']} | {v['removed']} | {v['changed']} |" for t, v in d["tables"].items()]
    return lines


def verdict(outcome: dict) -> str:
    """The run's outcome in one line (the CLI's last line, the artifact's title)."""
    release, pin = outcome["release"] or {}, outcome.get("pinned") or {}
    if outcome["status"] == "unchanged":
        return f"nothing new; release {release.get('release_id')} stays current"
    if outcome["status"] == "pinned":
        return (f"release {pin.get('release_id')} is pinned (rollback at {pin.get('at')}): new data staged, "
                "nothing published; run `politikpi unpin` to publish again")
    return f"published release {release.get('release_id')} (data through {release.get('data_through')})"


def summary_markdown(outcome: dict, settings: Settings) -> str:
    release = outcome["release"]
    if outcome["status"] != "published":
        return "\n".join([f"# politikpi refresh: {verdict(outcome)}", "", *_rows_and_rejected(outcome)])
    audit = release.get("validation_summary", {})
    lines = [f"# politikpi refresh: release `{release['release_id']}`", "",
             f"Data through **{release.get('data_through')}**; code `{release.get('code_version')}`.", "",
             f"KPI report: [{release.get('report')}](file://{release.get('report')})", "",
             "## Headline", *_headline(settings.warehouse / store.STABLE), "",
             "## What changed since the last release", *_changes(settings, release["release_id"]), "",
             *_rows_and_rejected(outcome)]
    lines += ["", "## Audit (Great Expectations)",
              f"{audit.get('checks', '?')} checks, {audit.get('failed', '?')} failed, "
              f"{len(audit.get('flagged', []))} flagged. Data Docs: `{audit.get('docs')}`"]
    lines += [f"- flagged: {f['frame']} {f['expectation']} {f['detail'][:200]}" for f in audit.get("flagged", [])[:10]]
    return "\n".join(lines)


def _rows_and_rejected(outcome: dict) -> list[str]:
    lines = ["## Rows this run (new or re-delivered files)",
             "| source | files | read | staged | quarantined | share |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in outcome["sources"].items():
        lines.append(f"| {name} | {s['files']} | {s['read']:,} | {s['staged']:,} | {s['quarantined']:,} "
                     f"| {s['share']:.2%} |")
    lines += ["", "## Rejected files"]
    return lines + ([f"- `{r['file']}`: {r['reason']}" for r in outcome["rejected"]] or ["None."])


def quarantine_table(settings: Settings) -> list[dict]:
    with duckdb.connect(str(db_path(settings.state)), read_only=True) as con:
        rows = con.execute("select source, rules, count(*) as rows, count(distinct file_identity) as files "
                           "from quarantine group by all order by source, rows desc").fetchall()
    return [{"source": s, "rules": r, "rows": n, "files": f} for s, r, n, f in rows] or \
        [{"source": "-", "rules": "no quarantined rows", "rows": 0, "files": 0}]
