"""`politikpi report --national` (SPEC 8.4): the districts ranked by mean response time, their
shares on scene within 10 and 20 minutes, reports per 1,000 inhabitants, the country's line and
every district's status, with section 5's disclosure rules (the country row is the total)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flows.release.disclosure import SECONDARY, hidden_with, protect
from flows.release.report import TEMPLATES, count, decimal, minutes, share

STATUS_DA = {"current": "aktuel", "stale": "forældet (data mere end 2 dage bagud)", "failed":
             "fejlet (seneste gode udgivelse bruges)", "missing": "mangler", "not_in_fleet": "ikke med"}


def gather(con: duckdb.DuckDBPyConnection, year: int | None) -> dict:
    years = [y for (y,) in con.execute("select distinct year(period_start) from kpi_district_comparison "
                                       "where period_grain = 'year' order by 1").fetchall()]
    if not years:
        raise ValueError("the national release holds no timed response: nothing to compare")
    year = year or years[-1]
    if year not in years:
        raise ValueError(f"no data for {year} in the national release; years held: {', '.join(map(str, years))}")
    cur = con.execute("""select c.*, d.police_district as name from kpi_district_comparison as c
                         left join dim_police_district as d using (district_code)
                         where period_grain = 'year' and year(period_start) = ? and cause is null
                         order by district_code is null, rank_mean is null, rank_mean, mean_min desc, district_code""",
                      [year])
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    cur = con.execute("""select i.*, d.police_district as name from national_inputs as i
                         join dim_police_district as d using (district_code) order by district_code""")
    cols = [d[0] for d in cur.description]
    inputs = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    release = con.execute("select release_id, data_through from _release").fetchone()
    return {"year": year, "rows": rows, "inputs": inputs, "release_id": release[0], "data_through": release[1]}


def comparison_table(data: dict) -> list[dict]:
    """The ranked rows with disclosure: response and report counts protected as columns whose total
    is the country's row; means, quantiles, shares and rates hidden with their count."""
    districts = [r for r in data["rows"] if r["district_code"] is not None]
    country = [r for r in data["rows"] if r["district_code"] is None]
    # cells in code order, so secondary suppression's ties go to the lower code, not the display order
    by_code = sorted(range(len(districts)), key=lambda i: districts[i]["district_code"])
    grid = protect([[districts[i]["responses"], districts[i]["reports"]] for i in by_code], row_totals=False,
                   col_totals=True)
    position = {i: k for k, i in enumerate(by_code)}
    out = []
    for i, r in enumerate(districts):
        n, reports = grid.shown(position[i], 0), grid.shown(position[i], 1)
        hide, hide_reports = n == SECONDARY or n == "<3", reports in (SECONDARY, "<3")
        out.append({"rank": r["rank_mean"] or "–", "name": r["name"], "low": r["low_sample"],
                    "responses": count(n), "mean": minutes(hidden_with(r["responses"], r["mean_min"], hide)),
                    "within10": share(hidden_with(r["responses"], r["share_within_10_min"], hide)),
                    "within20": share(hidden_with(r["responses"], r["share_within_20_min"], hide)),
                    "reports": count(reports),
                    "per1000": decimal(hidden_with(r["reports"], r["reports_per_1000"], hide_reports))})
    for r in country:
        out.append({"rank": "", "name": "Hele landet", "total": True, "low": r["low_sample"],
                    "responses": count(SECONDARY if 0 in grid.hidden_col_totals else r["responses"]),
                    "mean": minutes(r["mean_min"]), "within10": share(r["share_within_10_min"]),
                    "within20": share(r["share_within_20_min"]),
                    "reports": count(SECONDARY if 1 in grid.hidden_col_totals else r["reports"]),
                    "per1000": decimal(r["reports_per_1000"])})
    return out


def write_national_report(release_file: Path, out: Path, year: int | None = None) -> Path:
    with duckdb.connect(str(release_file), read_only=True) as con:
        data = gather(con, year)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    html = env.get_template("national.html").render(
        data=data, table=comparison_table(data), status=STATUS_DA,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
