"""The district's KPI report: one self-contained HTML file built from a release's own tables.

Charts are matplotlib SVG inlined in the page (no network, no JavaScript). Counts under 3 are
shown as "<3" (Statistics Denmark's disclosure rule) wherever a count is printed.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
MONTHS = ["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"]
ACTIVITY_LABELS = {
    "mobil_politistation": "Mobil politistation (udkørsler)", "tryghedsopfoelgning": "Tryghedsopfølgninger",
    "borgerraadgiver": "Borgerrådgiver-henvendelser", "sub_besoeg": "SUB-besøg",
    "foredrag": "Bestil en betjent (foredrag)", "faerdselskontrol": "Bestilte færdselskontroller",
}


def count(value) -> str:
    """A count as published outside the police: under 3 shown as "<3"."""
    if value is None:
        return "–"
    return "<3" if 0 < value < 3 else f"{value:,}".replace(",", ".")


def minutes(value) -> str:
    if value is None:
        return "–"
    whole = int(value)
    return f"{whole}:{round((value - whole) * 60):02d}"


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # creator/date: not needed, not stable
    return text[text.index("<svg"):]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.hashsalt": "politikpi"})
    return plt


def gather(con: duckdb.DuckDBPyConnection, year: int) -> dict:
    """Everything the report shows, read from the release's tables."""
    q = lambda sql, *p: con.execute(sql, list(p)).fetchall()  # noqa: E731
    names = dict(q("select municipality_code, municipality from dim_municipality"))
    summary_cols = [d[0] for d in con.execute("select * from kpi_year_summary limit 0").description]
    summary = q("select * from kpi_year_summary where year = ?", year)
    release = dict(zip([d[0] for d in con.execute("select * from _release").description],
                       q("select * from _release")[0], strict=True))
    return {
        "year": year, "names": names, "summary": dict(zip(summary_cols, summary[0], strict=True)) if summary else {},
        "per_1000": q("""select municipality_code, sum(reports), sum(reports_per_1000), max(population_year)
                         from kpi_reports where year(month) = ? group by 1 order by 3 desc""", year),
        "callouts_by_month": q("""select month, sum(callouts) from kpi_callouts where year(month) = ?
                                  group by 1 order by 1""", year),
        "response": q("""select municipality_code, responses, mean_min, p90_min, low_sample from kpi_response_times
                         where period_grain = 'year' and year(period_start) = ? and cause is null
                         order by municipality_code nulls first""", year),
        "spread": q("""select longest_municipality_code, longest_mean_min, shortest_municipality_code,
                              shortest_mean_min, spread_min from kpi_response_time_spread
                       where period_grain = 'year' and year(period_start) = ? and cause is null""", year),
        "quarters": q("""select period_start, municipality_code, mean_min, low_sample from kpi_response_times
                         where period_grain = 'quarter' and cause is null and municipality_code is not null
                         and year(period_start) between ? - 1 and ? order by 1, 2""", year, year),
        "outreach": q("""select activity, municipality_code, sum(activities) from kpi_outreach
                         where year(month) = ? group by all order by 1, 2""", year),
        "release": release,
        "period_end": min(dt.date(year, 12, 31), release["data_through"] or dt.date(year, 12, 31)),
    }


def charts(data: dict) -> dict[str, str]:
    plt = _plt()
    names = data["names"]
    out = {}
    rows = data["per_1000"]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh([names[r[0]] for r in rows][::-1], [r[2] for r in rows][::-1], color="#1f4e79")
    ax.set_xlabel(f"Anmeldelser pr. 1.000 indbyggere, {data['year']}")
    out["per_1000"] = _svg(fig)

    months = data["callouts_by_month"]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar([MONTHS[m[0].month - 1] for m in months], [m[1] for m in months], color="#1f4e79")
    ax.set_ylabel("Udrykninger")
    out["callouts"] = _svg(fig)

    response = [r for r in data["response"] if r[0] is not None and r[2] is not None]
    response.sort(key=lambda r: r[2], reverse=True)
    district = next((r for r in data["response"] if r[0] is None), None)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [names[r[0]] + (" *" if r[4] else "") for r in response][::-1]
    ax.barh(labels, [r[3] for r in response][::-1], color="#9dc3e6", label="90 %-fraktil")
    ax.barh(labels, [r[2] for r in response][::-1], color="#1f4e79", label="Gennemsnit")
    if district and district[2] is not None:
        ax.axvline(district[2], color="#c00000", linestyle="--", label=f"Kredsens gennemsnit {minutes(district[2])}")
    ax.set_xlabel("Minutter fra anmeldelse til første patrulje er fremme")
    ax.legend(loc="lower right", frameon=False)
    out["response"] = _svg(fig)

    fig, ax = plt.subplots(figsize=(7, 3))
    for code in sorted({r[1] for r in data["quarters"]}):
        points = [(r[0], r[2]) for r in data["quarters"] if r[1] == code]
        ax.plot([f"K{(p[0].month - 1) // 3 + 1} {p[0].year}" for p in points], [p[1] for p in points],
                marker="o", label=names[code])
    ax.set_ylabel("Gns. responstid (min)")
    ax.legend(ncol=4, fontsize=7, frameon=False)
    out["trend"] = _svg(fig)
    return out


def render(release_file: Path, year: int | None = None) -> str:
    """The report of one release file as a self-contained HTML page."""
    with duckdb.connect(str(release_file), read_only=True) as con:
        held = [r[0] for r in con.execute("select year from kpi_year_summary order by year").fetchall()]
        year = year or (held[-1] if held else None)
        if year is None:
            raise ValueError(f"{release_file} holds no year to report")
        if year not in held:
            raise ValueError(f"no data for {year} in {release_file.name}; years held: "
                             f"{', '.join(map(str, held))}")
        data = gather(con, year)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters.update(count=count, minutes=minutes)
    quarantine = json.loads(data["release"]["quarantine_summary"] or "{}")
    audit = json.loads(data["release"]["validation_summary"] or "{}")
    return env.get_template("report.html").render(
        data=data, charts=charts(data), quarantine=quarantine, audit=audit, activity_labels=ACTIVITY_LABELS,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), escape=html.escape)


def write_report(release_file: Path, out: Path, year: int | None = None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(release_file, year), encoding="utf-8")
    tmp.replace(out)
    return out
