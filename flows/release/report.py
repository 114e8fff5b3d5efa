"""The district's KPI report: one self-contained HTML file built from a release's own tables.

Every figure it shows comes from a sql/ model: the queries below only select (a test parses them
and fails on any aggregate or arithmetic). Python arranges, protects and renders: small counts and
what could reveal them are hidden (flows/release/disclosure.py). The charts (flows/release/charts.py)
plot only what the tables show.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flows.release.charts import charts
from flows.release.disclosure import PRIMARY, SECONDARY, hidden_with, protect, protect_by_code, small
from flows.transform.models import labels
from schemas.outreach import ACTIVITIES

TEMPLATES = Path(__file__).resolve().parent / "templates"
DISTRICT = "Hele kredsen"
TABLE_LABELS = {"kpi_reports": "Anmeldelser", "kpi_callouts": "Udrykninger", "kpi_outreach": "Borgernært politi",
                "kpi_response_times": "Responstid"}
COLUMN_LABELS = {"reports": "antal", "callouts": "antal", "activities": "antal", "responses": "målte udrykninger",
                 "mean_min": "gennemsnit (min:sek)"}

# What the report reads: selects only (tests/test_report.py parses these and fails on any
# aggregate or arithmetic); `?` is the report's year.
QUERIES = {
    "names": "select municipality_code, municipality from dim_municipality order by municipality_code",
    "summary": "select * from kpi_year_summary where year = ?",
    "years": "select year from kpi_year_summary order by year",
    "yoy": """select municipality_code, measure, value, prev_value, change, change_pct, population_year,
                     months_with_data
              from kpi_year_over_year where year = ?""",
    "callouts_by_month": "select month, callouts from rpt_callouts_by_month where year(month) = ? order by month",
    "response": """select municipality_code, responses, mean_min, p90_min, share_within_10_min, share_within_20_min,
                          low_sample
                   from kpi_response_times
                   where period_grain = 'year' and year(period_start) = ? and cause is null""",
    "trend": """select quarter_start, municipality_code, responses, mean_min, prev_mean_min, change_min,
                       change_ci_low_min, change_ci_high_min, change_significant, prev_responses
                from kpi_response_time_trend where cause is null and year(quarter_start) = ?
                order by quarter_start desc""",
    "spread": """select longest_municipality, longest_mean_min, shortest_municipality, shortest_mean_min, spread_min
                 from kpi_response_time_spread
                 where period_grain = 'year' and year(period_start) = ? and cause is null""",
    "quarters": """select period_start, municipality_code, mean_min, responses from kpi_response_times
                   where period_grain = 'quarter' and cause is null and municipality_code is not null
                   and year(period_start) in (?, ?) order by period_start, municipality_code""",
    "goals": """select year, goal, municipality_code, municipality, value, district_value, gap_min, responses,
                       prev_value, change, met
                from kpi_goal_progress where year <= ? order by goal, municipality_code, year""",
    "revisions": """select table_name, column_name, month, municipality_code, municipality, category, priority,
                           old_value, new_value, inputs_changed, code_changed, responses_now
                    from rpt_revisions where release_id = (select release_id from _release)
                    order by table_name, month, municipality_code nulls first, category, priority, column_name""",
    "quality": """select month, municipality, source, quarantined_share from kpi_data_quality
                  where year(month) = ? and municipality_code is not null and quarantined_share > 0.01
                  order by quarantined_share desc, month, municipality_code, source""",
}


def query_params(name: str, year: int) -> list[int]:
    """The year, for each `?` of a query (the quarterly chart also shows the year before)."""
    return [year - 1, year] if name == "quarters" else [year] * QUERIES[name].count("?")


def count(value) -> str:
    """A count as published outside the police: under 3 shown as "<3"; the marks pass through."""
    if value is None:
        return "–"
    if value in (PRIMARY, SECONDARY):
        return value
    return PRIMARY if 0 < value < 3 else f"{value:,.0f}".replace(",", ".")


def minutes(value) -> str:
    """Minutes as m:ss (from the unrounded value; 12.9999 is 13:00, never 12:60)."""
    if value is None:
        return "–"
    if value in (PRIMARY, SECONDARY):
        return value
    seconds = round(abs(value) * 60)
    return f"{'-' if value < 0 else ''}{seconds // 60}:{seconds % 60:02d}"


def share(value) -> str:
    if value is None:
        return "–"
    if value in (PRIMARY, SECONDARY):
        return value
    return f"{100 * value:.0f} %"


def decimal(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if value in (PRIMARY, SECONDARY):
        return value
    return f"{value:,.{digits}f}".replace(",", "X").replace(".", ",").replace("X", ".")


def arrow(change, significant=None) -> str:
    """↑ / ↓ / → for a change; "ikke signifikant" where a test says so."""
    if change is None:
        return "–"
    mark = "↑" if change > 0 else "↓" if change < 0 else "→"
    return mark if significant is None or significant else f"{mark} (ikke signifikant)"


def gather(con: duckdb.DuckDBPyConnection, year: int) -> dict:
    """Everything the report shows, selected from the release's tables."""
    data = {}
    for name, sql in QUERIES.items():
        cur = con.execute(sql, query_params(name, year))
        cols = [d[0] for d in cur.description]
        data[name] = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    cur = con.execute("select * from _release")
    data["release"] = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    data["names"] = {r["municipality_code"]: r["municipality"] for r in data["names"]}
    data["police_district"] = con.execute("select min(police_district) from dim_municipality").fetchone()[0]
    data["summary"] = data["summary"][0] if data["summary"] else {}
    data["year"] = year
    data["period_end"] = min(dt.date(year, 12, 31), data["release"]["data_through"] or dt.date(year, 12, 31))
    last = data["trend"][0]["quarter_start"] if data["trend"] else None
    data["trend"] = {r["municipality_code"]: r for r in data["trend"] if r["quarter_start"] == last}
    data["trend_quarter"] = last
    return data


def measure(data: dict, name: str, code: int | None = None) -> dict:
    return next((r for r in data["yoy"] if r["measure"] == name and r["municipality_code"] == code), {})


def cell(text: str, total: bool = False) -> dict:
    return {"text": text, "total": total}


def per_1000_table(data: dict) -> dict:
    """Reports and reports per 1,000 per municipality, highest rate first, the district as the total row.
    Suppression runs in municipality-code order (ties to the lower code, SPEC 5), not display order."""
    rows = sorted((r for r in data["yoy"] if r["measure"] == "reports_per_1000" and r["municipality_code"]),
                  key=lambda r: (-r["value"], r["municipality_code"]))
    counts = {r["municipality_code"]: measure(data, "reports", r["municipality_code"]).get("value") for r in rows}
    shown, total_hidden = protect_by_code(counts)
    body = []
    for r in rows:
        n = shown[r["municipality_code"]]
        body.append({"label": data["names"][r["municipality_code"]], "cells": [
            cell(count(n)), cell(decimal(hidden_with(counts[r["municipality_code"]], r["value"], n == SECONDARY))),
            cell(arrow(r["change"])), cell(str(r["population_year"]))]})
    district = measure(data, "reports_per_1000")
    total = SECONDARY if total_hidden else measure(data, "reports").get("value")
    body.append({"label": DISTRICT, "total": True, "cells": [
        cell(count(total), True), cell(decimal(hidden_with(total, district.get("value"), total_hidden)), True),
        cell(arrow(None if total_hidden else district.get("change")), True),
        cell(str(district.get("population_year") or "–"), True)]})
    return {"head": ["Kommune", "Anmeldelser", "Pr. 1.000 indbyggere", "Ændring fra året før", "Befolkningstal fra"],
            "rows": body, "order": [r["municipality_code"] for r in rows], "total_hidden": total_hidden,
            "hidden": {code for code, n in shown.items() if n in (PRIMARY, SECONDARY)}}


def response_table(data: dict) -> dict:
    """Response time per municipality, longest mean first, the district as the total row; suppression
    in municipality-code order, as in per_1000_table."""
    rows = sorted((r for r in data["response"] if r["municipality_code"] is not None),
                  key=lambda r: (-(r["mean_min"] or 0), r["municipality_code"]))
    shown, total_hidden = protect_by_code({r["municipality_code"]: r["responses"] for r in rows})
    body = []
    for r in rows + [next((d for d in data["response"] if d["municipality_code"] is None), None)]:
        if r is None:
            continue
        total = r["municipality_code"] is None
        n = (SECONDARY if total_hidden else r["responses"]) if total else shown[r["municipality_code"]]
        hide = n == SECONDARY
        t = data["trend"].get(r["municipality_code"], {})
        change = t.get("change_min")
        interval = "–" if t.get("change_ci_low_min") is None else \
            f"{minutes(t['change_ci_low_min'])} til {minutes(t['change_ci_high_min'])}"
        body.append({"label": DISTRICT if total else data["names"][r["municipality_code"]],
                     "flag": r["low_sample"], "total": total, "cells": [
            cell(count(n), total), cell(minutes(hidden_with(r["responses"], r["mean_min"], hide)), total),
            cell(minutes(hidden_with(r["responses"], r["p90_min"], hide)), total),
            cell(share(hidden_with(r["responses"], r["share_within_10_min"], hide)), total),
            cell(share(hidden_with(r["responses"], r["share_within_20_min"], hide)), total),
            cell(f"{arrow(change, t.get('change_significant'))} {minutes(hidden_with(r['responses'], change, hide))}"
                 if change is not None else "–", total),
            cell(interval if not hide else SECONDARY, total)]})
    return {"head": ["Kommune", "Målte udrykninger", "Gennemsnit", "90 %-fraktil", "Inden for 10 min",
                     "Inden for 20 min", "Ændring (4 kvartaler)", "95 %-interval"],
            "rows": body, "order": [r["municipality_code"] for r in rows], "total_hidden": total_hidden,
            "hidden": {code for code, n in shown.items() if n in (PRIMARY, SECONDARY)}, "shown": shown}


def spread_hidden(data: dict, response: dict) -> bool:
    """The report year's spread is computed from a mean the response table hides."""
    names = {data["names"][code] for code in response["hidden"]}
    return any(s["longest_municipality"] in names or s["shortest_municipality"] in names for s in data["spread"])


def callout_months(data: dict) -> tuple[dict, bool]:
    """The year's call-outs per month as the report may show them beside the year's total (the
    tile): small months hidden, and enough others that none can be worked out (ties to the earlier
    month); and whether the total itself must be hidden."""
    return protect_by_code({m["month"]: m["callouts"] for m in data["callouts_by_month"]})


def tiles(data: dict, per_1000: dict, response: dict) -> list[dict]:
    """The overview's tiles; a figure the tables hide is hidden here too, with its change."""
    district = next((r for r in data["response"] if r["municipality_code"] is None), {})
    hidden = {"reports": per_1000["total_hidden"], "callouts": callout_months(data)[1],
              "mean_response_min": response["total_hidden"] or small(district.get("responses"))}
    out = []
    for key, label in labels("kpi_year_summary"):
        value, secret = data["summary"].get(key), hidden.get(key, False)
        text = SECONDARY if secret else minutes(value) if key == "mean_response_min" else count(value)
        change = None
        if key in ("reports", "callouts") and not secret and (r := measure(data, key)) \
                and r.get("prev_value") is not None:
            change = f"{arrow(r['change'])} {decimal(r['change_pct'])} % fra {data['year'] - 1}"
        trend = data["trend"].get(None)
        if key == "mean_response_min" and not secret and trend and trend["change_min"] is not None:
            change = (f"{arrow(trend['change_min'], trend['change_significant'])} {minutes(trend['change_min'])} "
                      f"(95 %: {minutes(trend['change_ci_low_min'])} til {minutes(trend['change_ci_high_min'])})")
        out.append({"label": label, "text": text, "change": change})
    return out


def outreach_table(data: dict) -> dict:
    """Activities × municipalities with the district as each row's total (I alt)."""
    codes = sorted(data["names"])
    matrix = [[measure(data, f"outreach_{a}", code).get("value") or 0 for code in codes] for a in ACTIVITIES]
    grid = protect(matrix, row_totals=True, col_totals=False)
    body = []
    for i, activity in enumerate(ACTIVITIES):
        total = SECONDARY if i in grid.hidden_row_totals else measure(data, f"outreach_{activity}").get("value")
        body.append({"label": ACTIVITIES[activity],
                     "cells": [cell(count(grid.shown(i, j))) for j in range(len(codes))] + [cell(count(total), True)]})
    return {"head": ["Aktivitet", *[data["names"][c] for c in codes], "I alt"], "rows": body, "total_column": True}


def goal_tables(data: dict, response: dict) -> dict:
    """The goals by year; for the report year, a municipality the response table hides is hidden
    here (its responses, mean, gap and whether it improved), and so is a spread computed from it."""
    spread = [r for r in data["goals"] if r["goal"] == "shrink_spread"]
    small = [r for r in data["goals"] if r["goal"] == "improve_small_municipality"]
    met = {True: "ja", False: "nej", None: "–"}
    secret_spread = spread_hidden(data, response)

    def hide(r: dict) -> bool:
        return r["year"] == data["year"] and (r["municipality_code"] in response["hidden"]
                                              if r["municipality_code"] is not None else secret_spread)

    return {
        "spread": {"head": ["År", "Spredning", "Ændring", "Mindre end året før"], "rows": [
            {"label": str(r["year"]), "cells": [cell(SECONDARY) for _ in range(3)] if hide(r) else [
                cell(minutes(r["value"])), cell(minutes(r["change"])), cell(met[r["met"]])]} for r in spread]},
        "small": {"head": ["Kommune", "År", "Målte udrykninger", "Gennemsnit", "Kredsens gennemsnit",
                           "Forskel", "Bedre end året før"], "rows": [
            {"label": r["municipality"], "cells": [
                cell(str(r["year"])),
                cell(count(response["shown"][r["municipality_code"]] if hide(r) else r["responses"])),
                cell(minutes(hidden_with(r["responses"], r["value"], hide(r)))), cell(minutes(r["district_value"])),
                cell(minutes(hidden_with(r["responses"], r["gap_min"], hide(r)))),
                cell(SECONDARY if hide(r) else met[r["met"]])]} for r in small]},
    }


def revisions_table(data: dict) -> dict:
    rows = []
    for r in data["revisions"][:40]:
        is_mean = r["column_name"] == "mean_min"
        fmt = (lambda v, r=r: minutes(hidden_with(r["responses_now"], v))) if is_mean else count
        where = r["municipality"] or ("alle kommuner" if r["municipality_code"] is None else "?")
        what = r["category"] or "alle årsager"
        rows.append({"label": f"{TABLE_LABELS.get(r['table_name'], r['table_name'])}, "
                              f"{COLUMN_LABELS.get(r['column_name'], r['column_name'])}",
                     "cells": [cell(f"{r['month']:%Y-%m}"), cell(where), cell(what),
                               cell(fmt(r["old_value"])), cell(fmt(r["new_value"])),
                               cell("data" if r["inputs_changed"] else "kode" if r["code_changed"] else "–")]})
    return {"head": ["Tal", "Måned", "Kommune", "Kategori", "Før", "Nu", "Årsag"], "rows": rows,
            "more": max(len(data["revisions"]) - 40, 0)}


def render(release_file: Path, year: int | None = None) -> str:
    """The report of one release file as a self-contained HTML page."""
    with duckdb.connect(str(release_file), read_only=True) as con:
        held = [r[0] for r in con.execute(QUERIES["years"]).fetchall()]
        year = year or (held[-1] if held else None)
        if year is None:
            raise ValueError(f"{release_file} holds no year to report")
        if year not in held:
            raise ValueError(f"no data for {year} in {release_file.name}; years held: "
                             f"{', '.join(map(str, held))}")
        data = gather(con, year)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters.update(count=count, minutes=minutes, arrow=arrow, decimal=decimal)
    per_1000, response = per_1000_table(data), response_table(data)
    spread = [] if spread_hidden(data, response) else [s for s in data["spread"] if s["spread_min"] is not None]
    partial = {m: r["months_with_data"] for m in ("reports", "callouts", "responses")
               if (r := measure(data, m)) and r["months_with_data"] < 12}
    return env.get_template("report.html").render(
        data=data, charts=charts(data, per_1000, response), per_1000=per_1000, response=response,
        outreach=outreach_table(data), goals=goal_tables(data, response), revisions=revisions_table(data),
        tiles=tiles(data, per_1000, response), spread=spread, partial=partial,
        quarantine=json.loads(data["release"]["quarantine_summary"] or "{}"),
        audit=json.loads(data["release"]["validation_summary"] or "{}"),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def write_report(release_file: Path, out: Path, year: int | None = None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(release_file, year), encoding="utf-8")
    tmp.replace(out)
    return out
