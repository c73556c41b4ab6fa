"""A self-contained HTML report of a `cxnlp.report.summary.summarize()` dict: no scripts, fonts or images
from elsewhere, charts as inline SVG.

The markup is in Jinja2 templates (`cxnlp/templates/`: `report.html.j2`, its style in `report.css`,
the pieces any page showing a rollup can import in `macros.html.j2`, the trend chart in
`trend.svg.j2`), rendered
with autoescaping on, so every value from the data is HTML-escaped unless marked safe. This module
computes what the templates draw (chart geometry) and formats numbers (the template filters).

Right-to-left text: every cell holding user text (group values, topic names, review texts) has
`dir="auto"`, so a Persian or Arabic value takes its direction from its own first strong character
and its punctuation lands on the right side; labels that sit inside SVG are always dates or
numbers. A quoted text marks each topic's evidence with `<mark>` (the `highlight` filter); a mark
sets no direction of its own, so the text runs as it would without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape

from cxnlp.labels import SENTIMENTS

COLOURS = {"negative": "#c8423b", "neutral": "#9a9a9a", "positive": "#2f8f55"}
METHOD_NAMES = {"raw": "Raw", "pcc": "PCC", "acc": "ACC", "pacc": "PACC"}
P_ADJUST_NAMES = {
    "holm": "Holm",
    "benjamini-hochberg": "Benjamini-Hochberg",
    "bonferroni": "Bonferroni",
    "hommel": "Hommel",
    "benjamini-yekutieli": "Benjamini-Yekutieli",
}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _points(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _number(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None, percent: bool = True, digits: int = 1) -> Markup:
    """An interval as "[low–high]", in percent for shares, as is for points and means."""
    if not ci:
        return Markup("")
    scale = 100 if percent else 1
    return Markup('<span class="muted">[{}–{}]</span>').format(
        f"{scale * ci[0]:.{digits}f}", f"{scale * ci[1]:.{digits}f}"
    )


def _triple(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return "–"
    return " / ".join(_pct(estimate["shares"][label]) for label in SENTIMENTS)


def _highlight(text: object, spans: list[dict[str, Any]] | None) -> Markup:
    """`text`, escaped, with each evidence span (`cxnlp.report.evidence.evidence_spans`: code
    point offsets into `text`) in a `<mark>` whose class is the topic's polarity ("mixed" where
    overlapping spans disagree) and whose `data-topics` and title name its topics. Overlapping
    spans are cut where each begins and ends, so no mark holds another.

    >>> str(_highlight("<b>late</b> 😠 cold food", [{"start": 14, "end": 23, "topic": "food",
    ...     "polarity": "negative"}]))
    '&lt;b&gt;late&lt;/b&gt; 😠 <mark class="negative" data-topics="food" title="food">cold food</mark>'
    """
    text = "" if text is None else str(text)
    spans = [s for s in spans or [] if 0 <= s["start"] < s["end"] <= len(text) and s.get("topic")]
    cuts = sorted({0, len(text), *(s["start"] for s in spans), *(s["end"] for s in spans)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        covering = [s for s in spans if s["start"] <= a and b <= s["end"]]
        if not covering:
            out.append(escape(text[a:b]))
            continue
        names = list(dict.fromkeys(str(s["topic"]) for s in covering))
        polarities = {s.get("polarity") for s in covering}
        polarity = polarities.pop() if len(polarities) == 1 else "mixed"
        out.append(
            Markup('<mark class="{}" data-topics="{}" title="{}">{}</mark>').format(
                polarity or "", " ".join(names), ", ".join(names), text[a:b]
            )
        )
    return Markup("").join(out)


def environment() -> Environment:
    """The autoescaping Jinja2 environment of cxnlp's templates, with the report's filters and
    globals (`sentiments`, `colours`), for the report and any other page that shows a rollup."""
    env = Environment(
        loader=PackageLoader("cxnlp", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        pct=_pct, points=_points, number=_number, ci=_ci, triple=_triple, highlight=_highlight
    )
    env.globals.update(sentiments=SENTIMENTS, colours=COLOURS)
    return env


_ENV = environment()


def _macros() -> Any:
    return _ENV.get_template("macros.html.j2").module


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
    sections = [("By language", summary.get("by_lang"))]
    sections += [(f"By {column}", s) for column, s in (summary.get("by_group") or {}).items()]
    return _ENV.get_template("report.html.j2").render(
        summary=summary,
        title=title,
        sections=sections,
        trend=trend_chart(summary),
        method_names=METHOD_NAMES,
        p_adjust_names=P_ADJUST_NAMES,
    )


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
    return Markup(_macros().share_bars(segments, width))


def topic_bars(summary: dict[str, Any], limit: int = 15, width: int = 260) -> str:
    """An HTML table of the largest topics with an inline SVG bar of mentions split by polarity."""
    items = (summary.get("topics") or {}).get("items") or []
    return Markup(_macros().topic_bars(items[:limit], width)) if items else ""


def trend_chart(summary: dict[str, Any], width: int = 760, height: int = 240) -> str:
    """Inline SVG: one 100% stacked column of raw shares per period, and the negative share with
    its Wilson interval (band), and, with a labeled sample, its corrected estimate as a dashed
    line; empty when no periods."""
    periods = summary.get("by_period") or []
    sampled = (summary.get("settings") or {}).get("confusion_source") == "labeled sample"
    if not periods:
        return Markup("")
    left, right, top, bottom = 44, 12, 12, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / len(periods)
    bar_w = max(2.0, step * 0.7)
    ticks = [{"y": top + plot_h * (1 - t), "label": int(t * 100)} for t in (0, 0.25, 0.5, 0.75, 1)]
    columns, line, band_hi, band_lo, corrected = [], [], [], [], []
    for i, p in enumerate(periods):
        x = left + i * step + (step - bar_w) / 2
        centre = x + bar_w / 2
        shares = p["raw"]["shares"]
        y, rects = top + plot_h, []
        for label in SENTIMENTS:
            h = plot_h * (shares[label] or 0.0)
            y -= h
            rects.append({"label": label, "y": y, "h": h, "share": shares[label]})
        columns.append(
            {"x": x, "centre": centre, "rects": rects, "n": p["n"], "period": p["period"]}
        )
        columns[-1]["start"] = p["start"]
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
    return Markup(
        _ENV.get_template("trend.svg.j2").render(
            width=width,
            height=height,
            left=left,
            right=right,
            ticks=ticks,
            columns=columns,
            bar_w=bar_w,
            label_y=top + plot_h + 14,
            band=" ".join(band_hi + band_lo[::-1]),
            line=" ".join(line),
            corrected=" ".join(corrected),
        )
    )
