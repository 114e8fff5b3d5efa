"""The report's charts: matplotlib SVG inlined in the page (no network, no JavaScript).

`series` decides what is plotted, from the same data and the same disclosure as the tables: a
value computed from a count the report hides ("<3" or "..") is hidden in the chart too, and a
small count is never plotted. `charts` only draws those series. Charts show differences (no bars
on an axis from 0 for values that differ by a few percent), legends sit outside the plot, and the
tables below follow the order of the chart above them.
"""

from __future__ import annotations

import io
import re

from flows.release.disclosure import PRIMARY, SECONDARY, hidden_with, small

MONTHS = ["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"]


def series(data: dict, per_1000: dict, response: dict) -> dict[str, list]:
    """What each chart plots, as (label, value...) points; nothing the tables hide: no small or
    secondarily hidden count, no value computed from one (for the report year, a municipality the
    response table hides is left out of the quarterly and the goals charts too)."""
    from flows.release.report import callout_months, spread_hidden

    names = data["names"]
    rates = {r["municipality_code"]: r["value"] for r in data["yoy"]
             if r["measure"] == "reports_per_1000" and r["municipality_code"]}
    timed = {r["municipality_code"]: r for r in data["response"]}
    months, _ = callout_months(data)
    goals = [r for r in data["goals"] if r["value"] is not None]
    secret_spread = spread_hidden(data, response)
    this_year = lambda code, year: year == data["year"] and code in response["hidden"]  # noqa: E731
    return {
        "per_1000": [(names[c], rates[c]) for c in per_1000["order"] if c not in per_1000["hidden"]],
        "callouts": [(MONTHS[month.month - 1], n) for month, n in sorted(months.items())
                     if n not in (PRIMARY, SECONDARY)],
        "response": [(names[c] + (" *" if timed[c]["low_sample"] else ""), timed[c]["mean_min"], timed[c]["p90_min"])
                     for c in response["order"] if c not in response["hidden"] and timed[c]["mean_min"] is not None],
        "response_district": [(None, r["mean_min"]) for r in data["response"] if r["municipality_code"] is None
                              and r["mean_min"] is not None and not response["total_hidden"]
                              and not small(r["responses"])],
        # quarterly counts are shown nowhere: a mean over 3 or more responses gives no count away
        "trend": [(names[q["municipality_code"]], f"K{(q['period_start'].month - 1) // 3 + 1} {q['period_start'].year}",
                   q["mean_min"]) for q in data["quarters"]
                  if q["responses"] >= 3 and not this_year(q["municipality_code"], q["period_start"].year)],
        "spread": [(r["year"], r["value"]) for r in goals if r["goal"] == "shrink_spread"
                   and not (r["year"] == data["year"] and secret_spread)],
        "small": [(r["municipality"], r["year"], r["value"]) for r in goals if r["goal"] == "improve_small_municipality"
                  and hidden_with(r["responses"], r["value"]) != SECONDARY
                  and not this_year(r["municipality_code"], r["year"])],
        "small_district": sorted({(r["year"], r["district_value"]) for r in data["goals"]
                                  if r["goal"] == "improve_small_municipality" and r["district_value"] is not None}),
    }


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


def charts(data: dict, per_1000: dict, response: dict) -> dict[str, str]:
    """Each chart as inline SVG, drawn from `series` only."""
    from flows.release.report import minutes

    plt = _plt()
    plotted = series(data, per_1000, response)
    out = {}
    if points := plotted["per_1000"]:
        fig, ax = plt.subplots(figsize=(7, 2.8))
        values = [v for _, v in points][::-1]
        ax.plot(values, [name for name, _ in points][::-1], "o", color="#1f4e79")
        low, high = min(values), max(values)
        pad = max((high - low) * 0.15, 1)
        ax.set_xlim(low - pad, high + pad)  # the differences, not the distance from 0 (the axis says so)
        ax.set_xlabel(f"Anmeldelser pr. 1.000 indbyggere, {data['year']} (aksen starter ikke ved 0)")
        ax.grid(axis="x", color="#ddd")
        out["per_1000"] = _svg(fig)

    if points := plotted["callouts"]:
        fig, ax = plt.subplots(figsize=(7, 2.6))
        ax.plot([m for m, _ in points], [v for _, v in points], "o-", color="#1f4e79")
        ax.set_ylabel("Udrykninger (aksen starter ikke ved 0)")
        ax.grid(axis="y", color="#ddd")
        out["callouts"] = _svg(fig)

    if points := plotted["response"]:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        labels = [label for label, _, _ in points][::-1]
        ax.plot([p90 for _, _, p90 in points][::-1], labels, "s", color="#9dc3e6", label="90 %-fraktil")
        ax.plot([mean for _, mean, _ in points][::-1], labels, "o", color="#1f4e79", label="Gennemsnit")
        for _, mean in plotted["response_district"]:
            ax.axvline(mean, color="#c00000", linestyle="--", label=f"Kredsens gennemsnit {minutes(mean)}")
        ax.set_xlabel("Minutter fra anmeldelse til første patrulje er fremme")
        ax.grid(axis="x", color="#ddd")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        out["response"] = _svg(fig)

    if points := plotted["trend"]:
        fig, ax = plt.subplots(figsize=(7, 3))
        for name in dict.fromkeys(name for name, _, _ in points):
            mine = [(q, v) for n, q, v in points if n == name]
            ax.plot([q for q, _ in mine], [v for _, v in mine], marker="o", label=name)
        ax.set_ylabel("Gns. responstid (min)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
        out["trend"] = _svg(fig)

    spread, small_points, district = plotted["spread"], plotted["small"], plotted["small_district"]
    if spread or small_points:
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8))
        left.plot([y for y, _ in spread], [v for _, v in spread], "o-", color="#1f4e79")
        left.set_title("Spredning mellem kommunerne (min)", fontsize=9)
        left.set_xticks([y for y, _ in spread])
        right.plot([y for y, _ in district], [v for _, v in district], "--", color="#c00000",
                   label="Kredsens gennemsnit")
        for name in sorted({name for name, _, _ in small_points}):
            mine = [(y, v) for n, y, v in small_points if n == name]
            right.plot([y for y, _ in mine], [v for _, v in mine], "o-", label=name)
        right.set_title("De mindre kommuner (gns. min)", fontsize=9)
        right.set_xticks([y for y, _ in district])
        right.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
        out["goals"] = _svg(fig)
    return out
