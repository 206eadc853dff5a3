"""A run as ONE self-contained HTML file: statistics, inline SVG plots and a dialogue browser.

Nothing is fetched: styles, the script and the data are inside the file, plots are SVG written here, and a
Content-Security-Policy forbids any network access and lets only this module's own script run (by its
hash), so even text that slipped through as markup could not execute. Generated text is escaped twice
over: the server-side parts with ``html.escape``; the browser reads the dialogues from a
``<script type="application/json">`` block (``<``, ``>``, ``&`` written as ``\\u003c`` etc., so ``</script>``
in the data cannot end it) and inserts every string with ``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import html
import math
from pathlib import Path
from typing import Any

import orjson

from dialforge.report.stats import GroupStatistics, RunStatistics, read_records, run_statistics

MAX_DIALOGUES = 2000
"""dialogues the browser holds by default: about 20 MB of page with the quickstart's dialogues"""
_PALETTE = ("#3b6ea8", "#e08a2c", "#5a9e54", "#b8455a", "#7d62a8", "#8c6d4f")


def write_report(run_dir: Path | str, output: Path | str, *, max_dialogues: int | None = None) -> Path:
    """Write the report of ``run_dir`` (its ``dialogues.jsonl``) to ``output``; returns the path.

    The statistics cover every dialogue; the browser holds at most ``max_dialogues`` of them (a sample chosen by
    a hash of the id, so the same run always shows the same ones), because a page carrying tens of thousands of
    transcripts is too heavy for a browser (``None``: ``MAX_DIALOGUES``). The records are read once, in a stream."""
    max_dialogues = MAX_DIALOGUES if max_dialogues is None else max_dialogues
    if max_dialogues < 1:
        raise ValueError(f"max_dialogues must be at least 1, not {max_dialogues}")
    run_dir, output = Path(run_dir), Path(output)
    sample = IdSample(max_dialogues)
    stats = run_statistics(sample.offer(record) for record in read_records(run_dir / "dialogues.jsonl"))
    document = render_report(stats, sample.records(), title=f"dialforge report: {run_dir.resolve().name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document, encoding="utf-8")
    return output


class IdSample:
    """The ``size`` records with the lowest SHA-256 of their id, kept while the records stream past."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._heap: list[tuple[int, int, dict[str, Any]]] = []  # (-hash, position, record): largest hash on top
        self._seen = 0

    def offer(self, record: dict[str, Any]) -> dict[str, Any]:
        digest = hashlib.sha256(str(record.get("id")).encode()).digest()
        entry = (-int.from_bytes(digest[:8], "big"), self._seen, record)
        self._seen += 1
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        elif entry[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)
        return record

    def records(self) -> list[dict[str, Any]]:
        """The kept records, in the order they came."""
        return [record for _, _, record in sorted(self._heap, key=lambda entry: entry[1])]


def render_report(stats: RunStatistics, shown: list[dict[str, Any]], *, title: str = "dialforge report") -> str:
    """The report's HTML: ``stats`` of the whole run, and the canonical records ``shown`` in the browser."""
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    body = [
        f"<h1>{_e(title)}</h1>",
        _summary(stats),
        "<h2>Table 1 <small>(mean (max) per dialogue)</small></h2>",
        _table1(stats),
        "<h2>Outcome</h2>",
        _outcome(stats),
        "<h2>Plots</h2>",
        '<div class="plots">',
        _figure("Turns per dialogue", histogram_svg(stats.histograms.get("turn", {}), "turns")),
        _figure("Steps per dialogue", histogram_svg(stats.histograms.get("step", {}), "steps")),
        _figure("Tool usage (calls)", bar_svg(list(stats.overall.diversity.tool_usage.items())[:40])),
        _figure("Failure reasons (dialogues)", bar_svg(list(stats.overall.failure_reasons.items()))),
        _figure("Tokens per dialogue, by role", _tokens_svg(stats)),
        _figure("Judge verdicts", bar_svg(list(stats.overall.judging.verdicts.items()))),
        "</div>",
        _details_tables(stats),
        "<h2>Dialogues</h2>",
        _sample_note(len(shown), stats.dialogues),
        _BROWSER,
        f'<script type="application/json" id="dialogues-data">{embed_json(_browser_data(shown))}</script>',
        f"<script>{_SCRIPT}</script>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(policy)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _sample_note(shown: int, total: int) -> str:
    if shown >= total:
        return ""
    return (
        f'<p class="note">The browser holds {shown:,} of the {total:,} dialogues, chosen by a hash of their id '
        "(the statistics above cover all of them); <code>dialforge report --max-dialogues N</code> changes that.</p>"
    )


def embed_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&``, no line separators, as text."""
    text = orjson.dumps(value).decode()
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _html_table(headers: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    if not rows:
        return '<p class="hint">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i >= numeric_from else ''}>{_e(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _groups(stats: RunStatistics) -> list[GroupStatistics]:
    return [*stats.groups, stats.overall] if len(stats.groups) > 1 else stats.groups or [stats.overall]


def _summary(stats: RunStatistics) -> str:
    o = stats.overall
    cards = [
        ("dialogues", str(stats.dialogues)),
        ("completed", str(o.completed)),
        ("failed", str(o.failed)),
        ("judge pass rate", _pct(o.judging.pass_rate)),
        ("tool error rate", _pct(o.tool_error_rate)),
        ("distinct tools", f"{o.diversity.distinct_tools} / {o.diversity.tools_offered}"),
        (
            "near-dup. first user msgs",
            f"{o.diversity.near_duplicate_first_user_messages} / {o.diversity.first_user_messages}",
        ),
        ("distinct tool sequences", str(o.diversity.distinct_tool_sequences)),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>' for k, v in cards)
        + "</div>"
    )


def _table1(stats: RunStatistics) -> str:
    return _html_table(
        ["mode", "domain", "Step", "Turn", "Task", "dialogues"],
        [[g.mode, g.domain, str(g.step), str(g.turn), str(g.task), g.dialogues] for g in _groups(stats)],
        numeric_from=2,
    )


def _outcome(stats: RunStatistics) -> str:
    return _html_table(
        [
            "mode",
            "domain",
            "completed",
            "failed",
            "tool calls / dialogue",
            "tool error rate",
            "valid",
            "invalid",
            "unjudged",
            "pass rate",
            "max steps / request",
        ],
        [
            [
                g.mode,
                g.domain,
                g.completed,
                g.failed,
                str(g.tool_calls),
                _pct(g.tool_error_rate),
                g.judging.verdicts.get("valid", 0),
                g.judging.verdicts.get("invalid", 0),
                g.judging.verdicts.get("unjudged", 0),
                _pct(g.judging.pass_rate),
                str(g.max_steps_per_request),
            ]
            for g in _groups(stats)
        ],
        numeric_from=2,
    )


def _details_tables(stats: RunStatistics) -> str:
    o = stats.overall
    parts = ['<div class="plots">']
    parts.append(
        "<div><h3>Usage per dialogue, by role</h3>"
        + _html_table(
            ["role", "calls", "prompt tokens", "completion tokens", "reasoning tokens", "seconds"],
            [
                [
                    r,
                    _fmt(u.calls_per_dialogue),
                    _fmt(u.prompt_tokens_per_dialogue, 1),
                    _fmt(u.completion_tokens_per_dialogue, 1),
                    _fmt(u.reasoning_tokens_per_dialogue, 1),
                    f"{u.seconds_per_dialogue:.4f}",
                ]
                for r, u in o.usage.items()
            ],
        )
        + "</div>"
    )
    graded = [[f"rubric {k}", t.passed, t.total, _pct(t.rate)] for k, t in o.judging.rubric_items.items()]
    if o.judging.checks.total:
        graded.append(["SQL checks", o.judging.checks.passed, o.judging.checks.total, _pct(o.judging.checks.rate)])
    parts.append(
        "<div><h3>Judge: items passed</h3>" + _html_table(["item", "passed", "total", "rate"], graded) + "</div>"
    )
    parts.append(
        "<div><h3>Guards fired</h3>"
        + _html_table(
            ["guard", "times", "dialogues"], [[k, v, o.guard_dialogues.get(k, 0)] for k, v in o.guards.items()]
        )
        + "</div>"
    )
    parts.append(
        "<div><h3>Failure reasons</h3>"
        + _html_table(["reason", "dialogues"], [[k, v] for k, v in o.failure_reasons.items()])
        + "</div>"
    )
    parts.append("</div>")
    return "".join(parts)


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>"


def histogram_svg(counts: dict[int, int] | dict[str, int], unit: str, *, max_bins: int = 40) -> str:
    """Vertical bars of dialogues per value (binned when the values spread wider than ``max_bins``)."""
    values = {int(k): int(v) for k, v in counts.items()}
    if not values:
        return _empty_svg()
    low, high = min(values), max(values)
    width = max(1, math.ceil((high - low + 1) / max_bins))
    bins: dict[int, int] = {}
    for value, count in values.items():
        start = low + (value - low) // width * width
        bins[start] = bins.get(start, 0) + count
    starts = list(range(low, high + 1, width))
    peak = max(bins.values())
    w, h, left, bottom, top = 480, 220, 36, 34, 12
    bar = (w - left - 8) / len(starts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    plot_h = h - bottom - top
    for tick in _ticks(peak):
        y = top + plot_h * (1 - tick / peak)
        parts.append(f'<line x1="{left}" x2="{w - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    label_every = max(1, math.ceil(len(starts) / 12))
    for index, start in enumerate(starts):
        count = bins.get(start, 0)
        x = left + index * bar
        bar_h = plot_h * count / peak
        label = str(start) if width == 1 else f"{start}–{start + width - 1}"
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{max(bar - 2, 1):.1f}" height="{bar_h:.1f}"'
            f' fill="{_PALETTE[0]}"><title>{_e(f"{label} {unit}: {count} dialogues")}</title></rect>'
        )
        if index % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{h - bottom + 14}" text-anchor="middle">{_e(start)}</text>')
    parts.append(f'<text x="{(left + w) / 2:.0f}" y="{h - 4}" text-anchor="middle">{_e(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_svg(
    items: list[tuple[str, float]], *, series: list[str] | None = None, stacked: list[list[float]] | None = None
) -> str:
    """Horizontal bars, one per ``(label, value)``; or stacked bars when ``stacked`` gives each label's parts."""
    if not items:
        return _empty_svg()
    parts_of = stacked or [[value] for _, value in items]
    peak = max(sum(parts) for parts in parts_of) or 1
    row, left, w = 20, min(220, 12 + 7 * max(len(str(label)) for label, _ in items)), 480
    legend = 18 if series else 0
    h = legend + row * len(items) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    if series:
        for index, name in enumerate(series):
            out.append(f'<rect x="{left + index * 110}" y="3" width="10" height="10" fill="{_PALETTE[index % 6]}"/>')
            out.append(f'<text x="{left + index * 110 + 14}" y="12">{_e(name)}</text>')
    room = w - left - 70
    for index, ((label, value), parts) in enumerate(zip(items, parts_of, strict=True)):
        y = legend + index * row
        shown = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_e(shown)}<title>{_e(label)}</title></text>')
        x = float(left)
        for part_index, part in enumerate(parts):
            width = room * part / peak
            name = series[part_index] if series else ""
            colour = _PALETTE[part_index % 6]
            out.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" fill="{colour}">'
                f"<title>{_e(f'{label} {name}: {_fmt(part, 1)}'.replace('  ', ' '))}</title></rect>"
            )
            x += width
        out.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{_e(_fmt(value, 1))}</text>')
    out.append("</svg>")
    return "".join(out)


def _tokens_svg(stats: RunStatistics) -> str:
    usage = stats.overall.usage
    items = [
        (role, u.prompt_tokens_per_dialogue + u.completion_tokens_per_dialogue + u.reasoning_tokens_per_dialogue)
        for role, u in usage.items()
    ]
    stacked = [
        [u.prompt_tokens_per_dialogue, u.completion_tokens_per_dialogue, u.reasoning_tokens_per_dialogue]
        for u in usage.values()
    ]
    return bar_svg(items, series=["prompt", "completion", "reasoning"], stacked=stacked)


def _ticks(peak: int) -> list[int]:
    step = max(1, 10 ** math.floor(math.log10(peak)) if peak >= 10 else 1)
    while peak / step > 5:
        step *= 2
    return list(range(step, peak + 1, step))


def _empty_svg() -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 480 40" width="480" height="40" role="img">'
        '<text x="8" y="24">nothing to show</text></svg>'
    )


def _browser_data(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the browser shows of each dialogue (tools as names; env and generator left out)."""
    data = []
    for record in records:
        judgment = record.get("judgment")
        messages = record.get("messages") or []
        used = sorted(
            {
                (call.get("function") or {}).get("name", "?")
                for message in messages
                if message.get("role") == "assistant"
                for call in message.get("tool_calls") or ()
            }
        )
        data.append(
            {
                "id": record.get("id"),
                "mode": record.get("mode"),
                "domain": record.get("domain"),
                "status": record.get("status"),
                "failure": record.get("failure"),
                "verdict": judgment.get("judgment") if judgment else "unjudged",
                "judgment": judgment,
                "tools_used": used,
                "tools_offered": [(t.get("function") or t).get("name") for t in record.get("tools") or ()],
                "messages": messages,
                "tasks": record.get("tasks") or [],
                "stats": record.get("stats") or {},
                "usage": record.get("usage") or {},
                "guards": record.get("guards") or {},
                "persona": record.get("persona"),
                "seed": record.get("seed"),
            }
        )
    return data


_BROWSER = """<div id="browser">
<div class="filters">
<label>domain <select id="f-domain"></select></label>
<label>mode <select id="f-mode"></select></label>
<label>verdict <select id="f-verdict"></select></label>
<label>status <select id="f-status"></select></label>
<label>tool <select id="f-tool"></select></label>
<label>search <input id="f-text" type="search" placeholder="text in messages"></label>
<span id="count"></span>
</div>
<div class="panes"><ol id="dialogue-list"></ol><div id="dialogue-view"><p class="hint">Pick a dialogue.</p></div></div>
</div>"""

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:16px 24px;max-width:1400px;
color:#1d2329;background:#fafbfc}
h1{font-size:22px;margin:4px 0 12px}h2{font-size:18px;margin:22px 0 8px;border-bottom:1px solid #dde2e7}
h3{font-size:14px;margin:8px 0 4px}small{font-weight:normal;color:#667}
table{border-collapse:collapse;margin:4px 0;background:#fff}th,td{padding:3px 10px;border-bottom:1px solid #e4e8ec;
text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef1f4}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #dde2e7;border-radius:6px;
padding:8px 14px;min-width:110px}.card .v{font-size:20px;font-weight:600}.card .k{color:#667;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0;background:#fff;border:1px solid #dde2e7;
border-radius:6px;padding:8px}figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#333}svg .grid{stroke:#e4e8ec}
.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:8px 0}#count{color:#667}.note{color:#667}
.panes{display:flex;gap:14px;align-items:flex-start}
#dialogue-list{list-style:none;margin:0;padding:0;width:340px;flex:none;max-height:80vh;overflow:auto;
border:1px solid #dde2e7;background:#fff;border-radius:6px}
#dialogue-list li{padding:6px 10px;border-bottom:1px solid #eef1f4;cursor:pointer}
#dialogue-list li:hover{background:#f1f5fa}#dialogue-list li.sel{background:#e3ecf7}
#dialogue-list .meta{color:#667;font-size:12px}
#dialogue-view{flex:1;min-width:0}
.badge{display:inline-block;border-radius:9px;padding:0 7px;font-size:11px;margin-left:4px;background:#e4e8ec}
.badge.valid{background:#d5efd2}.badge.invalid{background:#f6d6d6}.badge.failed{background:#f3e0c4}
.msg{margin:8px 0;padding:8px 12px;border-radius:8px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}
.msg .who{font-size:11px;color:#667;font-weight:600;margin-bottom:2px;white-space:normal}
.user{background:#e3ecf7;margin-left:auto}.assistant{background:#fff;border:1px solid #dde2e7}
.tool{background:#f4f1ea;border:1px solid #e3dccb;font-family:ui-monospace,monospace;font-size:12px}
.tool.error{background:#fbeaea;border-color:#eab9b9}.system{background:#f0f0f0}
.call{font-family:ui-monospace,monospace;font-size:12px;background:#f6f8fa;border:1px solid #e4e8ec;
border-radius:4px;padding:4px 8px;margin-top:6px}
pre{white-space:pre-wrap;word-wrap:break-word;margin:2px 0}details summary{cursor:pointer;color:#3b6ea8}
.box{background:#fff;border:1px solid #dde2e7;border-radius:6px;padding:8px 12px;margin:8px 0}
.pass{color:#2c7a2c}.fail{color:#b03030}.hint{color:#667}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dialogues-data").textContent);
  var LIMIT = 500;
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); }
  }
  var filters = {
    domain: function (d) { return [d.domain]; },
    mode: function (d) { return [d.mode]; },
    verdict: function (d) { return [d.verdict]; },
    status: function (d) { return [d.status]; },
    tool: function (d) { return d.tools_used; }
  };
  Object.keys(filters).forEach(function (name) {
    var select = document.getElementById("f-" + name);
    var seen = {};
    data.forEach(function (d) { filters[name](d).forEach(function (v) { seen[v] = (seen[v] || 0) + 1; }); });
    var all = el("option", null, "all");
    all.value = "";
    select.appendChild(all);
    Object.keys(seen).sort().forEach(function (v) {
      var option = el("option", null, v + " (" + seen[v] + ")");
      option.value = v;
      select.appendChild(option);
    });
    select.addEventListener("change", update);
  });
  var search = document.getElementById("f-text");
  search.addEventListener("input", update);
  var list = document.getElementById("dialogue-list");
  var view = document.getElementById("dialogue-view");
  var selected = null;

  function matches(d) {
    var ok = Object.keys(filters).every(function (name) {
      var want = document.getElementById("f-" + name).value;
      return !want || filters[name](d).indexOf(want) >= 0;
    });
    var needle = search.value.trim().toLowerCase();
    if (ok && needle) {
      ok = d.id.toLowerCase().indexOf(needle) >= 0 || d.messages.some(function (m) {
        return typeof m.content === "string" && m.content.toLowerCase().indexOf(needle) >= 0;
      });
    }
    return ok;
  }
  function update() {
    var shown = data.filter(matches);
    list.textContent = "";
    shown.slice(0, LIMIT).forEach(function (d) {
      var item = el("li");
      item.dataset.id = d.id;
      item.appendChild(el("div", "title", d.id));
      var meta = el("div", "meta", d.mode + " · " + d.domain + " · " + (d.stats.turns || 0) + " turns");
      meta.appendChild(el("span", "badge " + d.verdict, d.verdict));
      if (d.status === "failed") meta.appendChild(el("span", "badge failed", "failed"));
      item.appendChild(meta);
      if (selected === d.id) item.classList.add("sel");
      item.addEventListener("click", function () { show(d); });
      list.appendChild(item);
    });
    var count = shown.length + " of " + data.length + " dialogues";
    if (shown.length > LIMIT) count += " (first " + LIMIT + " listed; filter to narrow)";
    document.getElementById("count").textContent = count;
    document.body.dataset.shown = String(shown.length);
  }
  function section(title) {
    var box = el("div", "box");
    box.appendChild(el("h3", null, title));
    return box;
  }
  function message(m) {
    var cls = m.role, who = m.role;
    if (m.role === "tool") {
      who = "tool result · " + m.name;
      if (typeof m.content === "string" && m.content.indexOf('{"error"') === 0) cls += " error";
    }
    var box = el("div", "msg " + cls);
    box.appendChild(el("div", "who", who));
    if (m.role === "system") {
      var fold = el("details");
      fold.appendChild(el("summary", null, "system prompt"));
      fold.appendChild(el("pre", null, m.content));
      box.appendChild(fold);
      return box;
    }
    if (m.reasoning) {
      var thought = el("details");
      thought.appendChild(el("summary", null, "reasoning"));
      thought.appendChild(el("pre", null, m.reasoning));
      box.appendChild(thought);
    }
    if (m.role === "tool") box.appendChild(el("pre", null, pretty(m.content)));
    else if (m.content) box.appendChild(el("div", "text", m.content));
    (m.tool_calls || []).forEach(function (call) {
      var c = el("div", "call");
      c.appendChild(el("div", "who", "tool call · " + call["function"].name + " · " + call.id));
      c.appendChild(el("pre", null, pretty(call["function"].arguments)));
      box.appendChild(c);
    });
    return box;
  }
  function show(d) {
    selected = d.id;
    Array.prototype.forEach.call(list.children, function (li) { li.classList.toggle("sel", li.dataset.id === d.id); });
    view.textContent = "";
    var head = el("div", "box");
    head.appendChild(el("h3", null, d.id));
    var facts = [d.mode, d.domain, "status " + d.status, "verdict " + d.verdict,
      (d.stats.turns || 0) + " turns", (d.stats.steps || 0) + " steps", (d.stats.tasks || 0) + " tasks done",
      (d.stats.tool_calls || 0) + " tool calls", (d.stats.tool_errors || 0) + " tool errors"];
    if (d.persona) facts.push("persona " + d.persona);
    head.appendChild(el("div", "meta", facts.join(" · ")));
    if (d.failure) head.appendChild(el("div", "fail", "failure: " + d.failure));
    var guards = Object.keys(d.guards);
    if (guards.length) head.appendChild(el("div", "meta", "guards: " + guards.map(function (g) {
      return g + " ×" + d.guards[g]; }).join(", ")));
    view.appendChild(head);
    if (d.tasks.length) {
      var tasks = section("Tasks");
      var ol = el("ol");
      d.tasks.forEach(function (t) {
        var li = el("li");
        li.appendChild(el("div", null, t.description));
        var extra = [];
        if (t.difficulty) extra.push("difficulty " + t.difficulty);
        if (t.tools && t.tools.length) extra.push("tools " + t.tools.join(", "));
        if (extra.length) li.appendChild(el("div", "meta", extra.join(" · ")));
        if (t.subtasks && t.subtasks.length) {
          var ul = el("ul");
          t.subtasks.forEach(function (s) { ul.appendChild(el("li", null, s)); });
          li.appendChild(ul);
        }
        ol.appendChild(li);
      });
      tasks.appendChild(ol);
      view.appendChild(tasks);
    }
    var chat = section("Conversation");
    d.messages.forEach(function (m) { chat.appendChild(message(m)); });
    view.appendChild(chat);
    var j = d.judgment;
    var judge = section("Judge");
    if (!j) judge.appendChild(el("div", "hint", "not judged"));
    else {
      judge.appendChild(el("div", j.judgment === "valid" ? "pass" : "fail", j.judgment));
      judge.appendChild(el("div", "text", j.reasoning));
      if (j.items && j.items.length) {
        var items = el("ul");
        j.items.forEach(function (it) {
          items.appendChild(el("li", it.passed ? "pass" : "fail",
            (it.passed ? "✓ " : "✗ ") + "[" + it.category + "] " + it.item));
        });
        judge.appendChild(items);
      }
      var checks = Object.keys(j.checks || {});
      if (checks.length) {
        var cl = el("ul");
        checks.forEach(function (c) {
          cl.appendChild(el("li", j.checks[c] ? "pass" : "fail", (j.checks[c] ? "✓ " : "✗ ") + c));
        });
        judge.appendChild(el("div", "meta", "SQL checks"));
        judge.appendChild(cl);
      }
      if (j.verification) {
        var ver = el("details");
        ver.appendChild(el("summary", null, "verification"));
        ver.appendChild(el("pre", null, JSON.stringify(j.verification, null, 2)));
        judge.appendChild(ver);
      }
    }
    view.appendChild(judge);
    var usage = el("details", "box");
    usage.appendChild(el("summary", null, "usage and tools offered"));
    usage.appendChild(el("pre", null, JSON.stringify(d.usage, null, 2)));
    usage.appendChild(el("div", "meta", "tools offered: " + d.tools_offered.join(", ")));
    view.appendChild(usage);
  }
  update();
  if (data.length) show(data.filter(matches)[0] || data[0]);
  window.dialforgeReport = {data: data, update: update, show: function (id) {
    var d = data.filter(function (x) { return x.id === id; })[0];
    if (d) show(d);
    return !!d;
  }};
})();
"""
