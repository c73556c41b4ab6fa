"""A self-contained HTML report of a `cxnlp.report.summary.summarize()` dict: no scripts, fonts or images
from elsewhere, charts as inline SVG.

Right-to-left text: every cell holding user text (group values, topic names, review texts) has
`dir="auto"`, so a Persian or Arabic value takes its direction from its own first strong character
and its punctuation lands on the right side; labels that sit inside SVG are always dates or
numbers. All user text is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from cxnlp.labels import SENTIMENTS

COLOURS = {"negative": "#c8423b", "neutral": "#9a9a9a", "positive": "#2f8f55"}
_STYLE = """
body{font-family:system-ui,"Segoe UI",Tahoma,"Noto Sans Arabic","Vazirmatn",sans-serif;
margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{padding:.25rem .55rem;border-bottom:1px solid #eee;text-align:start;vertical-align:top}
td.num{text-align:end;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:#777;font-size:.88rem}.flag{color:#b0261f;font-weight:600}
.legend span{display:inline-block;margin-inline-end:1rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-inline-end:.3rem;vertical-align:middle}
.tiles{display:flex;gap:1rem;flex-wrap:wrap}.tile{border:1px solid #ddd;border-radius:6px;
padding:.6rem 1rem;min-width:9rem}.tile b{display:block;font-size:1.5rem}
blockquote{margin:.3rem 0;padding:.3rem .7rem;border-inline-start:3px solid #c8423b;
background:#faf5f5}
"""


def render_html(summary: dict[str, Any], title: str = "Customer feedback report") -> str:
    """The report as one HTML document.

    >>> from cxnlp.report.summary import summarize
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"sentiment": ["negative"], "p_positive": [0.1],
    ...     "p_neutral": [0.1], "p_negative": [0.8], "error": [None], "text": ["<b>bad</b>"]})
    >>> page = render_html(summarize(frame))
    >>> "<svg" in page and "&lt;b&gt;bad&lt;/b&gt;" in page
    True
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en" dir="ltr"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f'<h1 dir="auto">{escape(title)}</h1>',
        _overview(summary),
        _alerts(summary),
        _section_shares("By language", summary.get("by_lang")),
    ]
    for column, segments in summary.get("by_group", {}).items():
        parts.append(_section_shares(f"By {column}", segments))
    parts += [_trend(summary), _topics(summary), _scores(summary), _footer(summary)]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_html(
    summary: dict[str, Any], path: str | Path, title: str = "Customer feedback report"
) -> Path:
    """Write `render_html(summary, title)` to `path` as UTF-8; returns the path."""
    path = Path(path)
    path.write_text(render_html(summary, title), encoding="utf-8")
    return path


def share_bars(segments: dict[str, dict[str, Any]], width: int = 260) -> str:
    """An HTML table with one stacked share bar (inline SVG) per segment, plus the raw shares with
    their intervals, net sentiment, the ratio and the corrected shares."""
    has_acc = any(s.get("acc") for s in segments.values())
    has_pacc = any(s.get("pacc") for s in segments.values())
    head = (
        "<tr><th>segment</th><th>raw shares</th><th>n</th><th>negative [95% CI]</th>"
        "<th>neutral</th><th>positive [95% CI]</th><th>net</th><th>pos:neg</th>"
        "<th>PCC neg / neu / pos</th>"
        + ("<th>ACC neg / neu / pos</th>" if has_acc else "")
        + ("<th>PACC neg / neu / pos</th>" if has_pacc else "")
        + "</tr>"
    )
    rows = []
    for name, s in segments.items():
        raw = s["raw"]
        cells = [
            f'<th scope="row" dir="auto">{escape(str(name))}</th>',
            f"<td>{_stacked_bar(raw['shares'], width, str(name))}</td>",
            f'<td class="num">{s["n"]}</td>',
            _share_cell(raw, "negative", interval=True),
            _share_cell(raw, "neutral", interval=False),
            _share_cell(raw, "positive", interval=True),
            f'<td class="num">{_points(raw["net_sentiment"])}</td>',
            f'<td class="num">{_number(raw["ratio_pos_neg"])}</td>',
            f'<td class="num">{_triple(s.get("pcc"))}</td>',
        ]
        if has_acc:
            cells.append(f'<td class="num">{_triple(s.get("acc"))}</td>')
        if has_pacc:
            cells.append(f'<td class="num">{_triple(s.get("pacc"))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def trend_chart(summary: dict[str, Any], width: int = 760, height: int = 240) -> str:
    """Inline SVG: one 100% stacked column of raw shares per period, and the negative share with
    its Wilson interval (band), and, with a labeled sample, its corrected estimate as a dashed
    line; empty when no periods."""
    periods = summary.get("by_period") or []
    sampled = (summary.get("settings") or {}).get("confusion_source") == "labeled sample"
    if not periods:
        return ""
    left, right, top, bottom = 44, 12, 12, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / len(periods)
    bar_w = max(2.0, step * 0.7)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>Sentiment shares by period</title>'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - tick)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{int(tick * 100)}%</text>"
        )
    line, band_hi, band_lo, corrected = [], [], [], []
    for i, p in enumerate(periods):
        x = left + i * step + (step - bar_w) / 2
        centre = x + bar_w / 2
        shares = p["raw"]["shares"]
        y = top + plot_h
        for label in SENTIMENTS:
            share = shares[label] or 0.0
            h = plot_h * share
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[label]}" fill-opacity="0.35"><title>{escape(p["period"])} '
                f"{label}: {_pct(shares[label])} (n={p['n']})</title></rect>"
            )
        if p["n"]:
            line.append(f"{centre:.1f},{top + plot_h * (1 - shares['negative']):.1f}")
            low, high = p["raw"]["ci95"]["negative"]
            band_hi.append(f"{centre:.1f},{top + plot_h * (1 - high):.1f}")
            band_lo.append(f"{centre:.1f},{top + plot_h * (1 - low):.1f}")
            # Only a correction from the user's own labeled sample is drawn: the dev-matrix ACC
            # and PCC can be further from the truth than the raw line.
            fix = (p.get("pacc") or p.get("acc") or {}).get("shares", {}).get("negative")
            fix = fix if sampled else None
            if fix is not None:
                corrected.append(f"{centre:.1f},{top + plot_h * (1 - fix):.1f}")
        label_y = top + plot_h + 14
        out.append(
            f'<text x="{centre:.1f}" y="{label_y}" font-size="10" text-anchor="end" '
            f'transform="rotate(-35 {centre:.1f} {label_y})">{escape(p["start"])}</text>'
        )
    if band_hi:
        points = " ".join(band_hi + band_lo[::-1])
        out.append(f'<polygon points="{points}" fill="{COLOURS["negative"]}" fill-opacity="0.18"/>')
        out.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="{COLOURS["negative"]}" '
            'stroke-width="2"/>'
        )
    if corrected:
        out.append(
            f'<polyline points="{" ".join(corrected)}" fill="none" stroke="#5a2d82" '
            'stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
    out.append("</svg>")
    return "".join(out)


def topic_bars(summary: dict[str, Any], limit: int = 15, width: int = 260) -> str:
    """An HTML table of the largest topics with an inline SVG bar of mentions split by polarity."""
    items = (summary.get("topics") or {}).get("items") or []
    if not items:
        return ""
    top = items[:limit]
    largest = max(i["mentions"] for i in top)
    rows = []
    for item in top:
        scale = width * item["mentions"] / largest
        shares = {k: v / item["mentions"] for k, v in item["polarity"].items()}
        rows.append(
            f'<tr><th scope="row" dir="auto">{escape(item["topic"])}</th>'
            f"<td>{_stacked_bar(shares, width, item['topic'], length=scale)}</td>"
            f'<td class="num">{item["mentions"]}</td><td class="num">{_pct(item["share"])}</td>'
            f'<td class="num">{_pct(item["negative_share"])} {_ci(item["negative_ci95"])}</td>'
            f'<td class="num">{item["polarity"]["negative"]} / {item["polarity"]["neutral"]} / '
            f"{item['polarity']['positive']}</td></tr>"
        )
    return (
        "<table><tr><th>topic</th><th>mentions by polarity</th><th>mentions</th>"
        "<th>of rows</th><th>negative [95% CI]</th><th>neg / neu / pos</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _stacked_bar(
    shares: dict[str, float | None], width: int, name: str, length: float | None = None
) -> str:
    length = width if length is None else length
    x, rects = 0.0, []
    for label in SENTIMENTS:
        w = length * (shares.get(label) or 0.0)
        rects.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="14" fill="{COLOURS[label]}">'
            f"<title>{label}: {_pct(shares.get(label))}</title></rect>"
        )
        x += w
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="14" role="img" '
        f'aria-label="{escape(name)}"><rect width="{width}" height="14" fill="#f3f3f3"/>'
        + "".join(rects)
        + "</svg>"
    )


def _legend() -> str:
    return (
        '<p class="legend">'
        + "".join(
            f'<span><i class="swatch" style="background:{COLOURS[s]}"></i>{s}</span>'
            for s in SENTIMENTS
        )
        + "</p>"
    )


def _overview(summary: dict[str, Any]) -> str:
    overall = summary["overall"]
    raw = overall["raw"]
    tiles = [
        ("rows", summary["rows"]),
        ("classified", summary["classified"]),
        ("errors (left out)", summary["errors"]),
        ("negative", _pct(raw["shares"]["negative"])),
        ("positive", _pct(raw["shares"]["positive"])),
        ("net sentiment", _points(raw["net_sentiment"])),
    ]
    html = [
        "<h2>Overall</h2><div class='tiles'>",
        *(f'<div class="tile"><b>{escape(str(v))}</b>{escape(k)}</div>' for k, v in tiles),
        "</div>",
        _legend(),
        share_bars({"all rows": overall}),
        _methods(summary),
        _labeled_sample(summary),
    ]
    reasons = summary.get("error_reasons") or {}
    if reasons:
        html.append(
            "<p class='muted'>Errors: "
            + "; ".join(f"<bdi>{escape(str(k))}</bdi> ({v})" for k, v in reasons.items())
            + "</p>"
        )
    return "".join(html)


def _labeled_sample(summary: dict[str, Any]) -> str:
    sample = summary.get("labeled_sample")
    if not sample:
        return ""
    parts = "; ".join(
        f"{escape(key if key != '*' else 'all')}: {q['n']} rows, accuracy {_pct(q['accuracy'])}, "
        f"macro-F1 {q['macro_f1']:.2f}"
        for key, q in sample["by_lang"].items()
    )
    return (
        f"<p class='muted'>Labeled sample ({escape(str(sample['gold_col']))}): the model against "
        f"the hand-given sentiment, {parts}. ACC and PACC use its confusion.</p>"
    )


def _methods(summary: dict[str, Any]) -> str:
    names = {"raw": "Raw", "pcc": "PCC", "acc": "ACC", "pacc": "PACC"}
    items = "".join(
        f"<li><b>{names.get(k, escape(k))}</b>: {escape(v)}</li>"
        for k, v in summary.get("methods", {}).items()
    )
    return f"<ul class='muted'>{items}</ul>"


def _section_shares(title: str, segments: dict[str, Any] | None) -> str:
    if not segments:
        return ""
    return f'<h2 dir="auto">{escape(title)}</h2>{share_bars(segments)}'


def _trend(summary: dict[str, Any]) -> str:
    chart = trend_chart(summary)
    if not chart:
        return ""
    settings = summary.get("settings", {})
    rows = "".join(
        f'<tr><td>{escape(p["period"])}</td><td class="num">{p["n"]}</td>'
        f'<td class="num">{_pct(p["raw"]["shares"]["negative"])} '
        f"{_ci(p['raw']['ci95']['negative'])}</td>"
        f'<td class="num">{_points(p["raw"]["net_sentiment"])}</td>'
        f'<td class="num">{_triple(p.get("pcc"))}</td>'
        f'<td class="num">{_triple(p.get("acc"))}</td></tr>'
        for p in summary["by_period"]
    )
    return (
        f"<h2>Trend by {escape(str(settings.get('period')))} "
        f"({escape(str(settings.get('date_col')))})</h2>{_legend()}{chart}"
        "<p class='muted'>Columns: raw shares. Red line and band: raw negative share with its 95% "
        "interval. Dashed (only with a labeled sample): the negative share corrected by the "
        "sample (PACC, else ACC).</p>"
        "<table><tr><th>period</th><th>n</th><th>negative [95% CI]</th><th>net</th>"
        f"<th>PCC neg / neu / pos</th><th>ACC neg / neu / pos</th></tr>{rows}</table>"
    )


def _topics(summary: dict[str, Any]) -> str:
    topics = summary.get("topics") or {}
    html = ["<h2>Topics</h2>"]
    bars = topic_bars(summary)
    if not bars:
        html.append("<p class='muted'>No topics in the classified rows.</p>")
    else:
        html.append("<h3>By volume</h3>" + bars)
        by_name = {i["topic"]: i for i in topics["items"]}
        ranked = topics.get("ranked_by_negative_share") or []
        if ranked:
            html.append(
                f"<h3>By negative share (topics with at least "
                f"{topics.get('min_mentions_for_negative_rank')} mentions)</h3><table>"
                "<tr><th>topic</th><th>negative [95% CI]</th><th>mentions</th></tr>"
                + "".join(
                    f'<tr><th scope="row" dir="auto">{escape(t)}</th><td class="num">'
                    f"{_pct(by_name[t]['negative_share'])} {_ci(by_name[t]['negative_ci95'])}</td>"
                    f'<td class="num">{by_name[t]["mentions"]}</td></tr>'
                    for t in ranked[:15]
                )
                + "</table>"
            )
        quoted = [i for i in topics["items"][:5] if i.get("examples")]
        if quoted:
            html.append("<h3>Negative examples for the largest topics</h3>")
            for item in quoted:
                html.append(f'<h4 dir="auto">{escape(item["topic"])}</h4>')
                html += [
                    f'<blockquote dir="auto">{escape(t)}</blockquote>' for t in item["examples"]
                ]
    examples = summary.get("negative_examples") or []
    if examples:
        html.append("<h3>Most negative texts</h3>")
        html += [f'<blockquote dir="auto">{escape(e["text"])}</blockquote>' for e in examples]
    return "".join(html)


def _scores(summary: dict[str, Any]) -> str:
    scores = summary.get("scores")
    if not scores:
        return ""
    kind = scores["kind"]
    settings = summary.get("settings", {})
    if kind == "nps":
        headline = (
            f"NPS <b>{_number(scores.get('nps'), 1)}</b> {_ci(scores.get('ci95'), percent=False)} "
            f"({scores.get('promoters')} promoters, {scores.get('passives')} passives, "
            f"{scores.get('detractors')} detractors)"
        )
    elif kind == "csat":
        headline = (
            f"CSAT <b>{_pct(scores.get('csat'))}</b> {_ci(scores.get('ci95'))} satisfied (4-5), "
            f"mean {_number(scores.get('mean'))}"
        )
    else:
        interval = _ci(scores.get("ci95"), percent=False, digits=2)
        headline = f"CES mean <b>{_number(scores.get('mean'))}</b> {interval}"
    html = [
        f"<h2>{kind.upper()} ({escape(str(settings.get('score_col')))})</h2>",
        f"<p>{headline}; n = {scores['n']}, {scores['missing']} without a score.</p>",
    ]
    drivers = scores.get("drivers") or {}
    if drivers.get("note"):
        html.append(f"<p class='muted'>{escape(drivers['note'])}</p>")
    for key in ("topics", "sentiments"):
        rows = drivers.get(key) or []
        if not rows:
            continue
        name = key[:-1]
        html.append(
            f"<h3>{escape(name.capitalize())}s among {escape(drivers['group'])}</h3><table>"
            f"<tr><th>{name}</th><th>lift</th><th>share in group</th><th>share overall</th>"
            "<th>p (Holm)</th></tr>"
            + "".join(
                f'<tr><th scope="row" dir="auto">{escape(str(r[name]))}</th>'
                f'<td class="num{" flag" if r["over_represented"] else ""}">'
                f"{_number(r['lift'])}</td>"
                f'<td class="num">{_pct(r["share_in_group"])}</td>'
                f'<td class="num">{_pct(r["share_overall"])}</td>'
                f'<td class="num">{_number(r["p_adjusted"], 3)}</td></tr>'
                for r in rows[:15]
            )
            + "</table>"
        )
    return "".join(html)


def _alerts(summary: dict[str, Any]) -> str:
    alerts = summary.get("alerts")
    if not alerts:
        return ""
    html = ["<h2>Alerts</h2>"]
    if alerts.get("current") is None:
        html.append("<p class='muted'>Not enough periods with data to compare.</p>")
        return "".join(html)
    baseline = alerts["baseline"]
    baseline = ", ".join(baseline) if isinstance(baseline, list) else baseline
    html.append(
        f"<p>{escape(alerts['current'])} against {escape(str(baseline))}; a rise is flagged "
        f"when its p-value (Holm-adjusted within segments and within topics) is below "
        f"{alerts['alpha']}.</p>"
    )
    flagged = alerts.get("flagged") or []
    if not flagged:
        html.append("<p>No significant rise.</p>")
    for t in flagged:
        html.append(
            f'<p class="flag">{_test_name(t)}: '
            f"{_pct(t['baseline_share'])} (n={t['baseline_n']}) → {_pct(t['current_share'])} "
            f"(n={t['current_n']}), {_points(t['difference'])} points, Cohen's h "
            f"{_number(t['cohens_h'])}, p={_number(t['p_value'], 4)} "
            f"(adjusted {_number(t['p_adjusted'], 4)})</p>"
        )
    tests = alerts.get("tests") or []
    if tests:
        html.append(
            f"<details><summary>All {len(tests)} tests</summary><table><tr><th>test</th>"
            "<th>before</th><th>now</th><th>diff</th><th>h</th><th>p</th>"
            "<th>p adj.</th></tr>"
            + "".join(
                f"<tr><td>{_test_name(t)}</td>"
                f'<td class="num">{_pct(t["baseline_share"])}</td>'
                f'<td class="num">{_pct(t["current_share"])}</td>'
                f'<td class="num">{_points(t["difference"])}</td>'
                f'<td class="num">{_number(t["cohens_h"])}</td>'
                f'<td class="num">{_number(t["p_value"], 4)}</td>'
                f'<td class="num">{_number(t["p_adjusted"], 4)}</td></tr>'
                for t in tests
            )
            + "</table></details>"
        )
    return "".join(html)


def _test_name(test: dict[str, Any]) -> str:
    """What a test is about, as HTML: user values isolated in <bdi> so RTL text stays put."""
    value = f"<bdi>{escape(str(test['value']))}</bdi>"
    if test["kind"] == "topic_share":
        return f"share of rows mentioning {value}"
    if test["column"] is None:
        return "negative share, all rows"
    return f"negative share, {escape(str(test['column']))} = {value}"


def _footer(summary: dict[str, Any]) -> str:
    notes = summary.get("notes") or []
    if not notes:
        return ""
    items = "".join(f'<li dir="auto">{escape(n)}</li>' for n in notes)
    return f"<h2>Notes</h2><ul class='muted'>{items}</ul>"


def _share_cell(raw: dict[str, Any], label: str, interval: bool) -> str:
    ci = _ci(raw["ci95"][label]) if interval else ""
    return f'<td class="num">{_pct(raw["shares"][label])} {ci}</td>'


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _points(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _number(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None, percent: bool = True, digits: int = 1) -> str:
    """An interval as "[low–high]", in percent for shares, as is for points and means."""
    if not ci:
        return ""
    scale = 100 if percent else 1
    return f'<span class="muted">[{scale * ci[0]:.{digits}f}–{scale * ci[1]:.{digits}f}]</span>'


def _triple(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return "–"
    s = estimate["shares"]
    return " / ".join(_pct(s[label]) for label in SENTIMENTS)
