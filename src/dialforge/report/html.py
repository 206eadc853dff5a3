"""A run as ONE self-contained HTML file: statistics, inline SVG plots and a dialogue browser.

Nothing is fetched: the page's style, script and browser markup (package data in ``assets/``) and the data are
written into the file, plots are inline SVG (``plots``), and a Content-Security-Policy forbids any network
access and lets only the page's own script run (by its hash), so even text that slipped through as markup
could not execute. Generated text is escaped twice over: the server-side parts with ``html.escape``; the
browser reads the dialogues from a ``<script type="application/json">`` block (``<``, ``>``, ``&`` written as
``\\u003c`` etc., so ``</script>`` in the data cannot end it) and inserts every string with ``textContent``,
never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
from functools import cache
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from dialforge.report.formatting import percent
from dialforge.report.plots import bar_svg, histogram_svg
from dialforge.report.stats import RunStatistics, run_dir_statistics
from dialforge.report.tables import Table, group_tables, overall_tables

MAX_DIALOGUES = 2000
"""dialogues the browser holds by default: about 20 MB of page with the quickstart's dialogues"""


def write_report(run_dir: Path | str, output: Path | str, *, max_dialogues: int | None = None) -> Path:
    """Write the report of ``run_dir`` (its ``dialogues.jsonl``) to ``output``; returns the path.

    The statistics cover every dialogue and the run's preparation; the browser holds at most ``max_dialogues``
    dialogues (a sample chosen by a hash of the id, so the same run always shows the same ones), because a page
    carrying tens of thousands of transcripts is too heavy for a browser (``None``: ``MAX_DIALOGUES``). The records
    are read once, in a stream."""
    max_dialogues = MAX_DIALOGUES if max_dialogues is None else max_dialogues
    if max_dialogues < 1:
        raise ValueError(f"max_dialogues must be at least 1, not {max_dialogues}")
    run_dir, output = Path(run_dir), Path(output)
    sample = IdSample(max_dialogues)
    stats = run_dir_statistics(run_dir, sample.offer)
    document = render_report(stats, sample.records(), title=f"dialforge report: {run_dir.resolve().name}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(document, encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"cannot write {output}: {exc.strerror or exc}; choose an --output path in a writable directory"
        ) from None
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
    script = _asset("report.js")
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    overall = stats.overall
    body = [
        f"<h1>{escape(title)}</h1>",
        _cards(stats),
        *(_heading("h2", table) + _html_table(table) for table in group_tables(stats)),
        "<h2>Plots</h2>",
        '<div class="plots">',
        _figure("Turns per dialogue", histogram_svg(stats.histograms.get("turn", {}), "turns")),
        _figure("Steps per dialogue", histogram_svg(stats.histograms.get("step", {}), "steps")),
        _figure("Tool usage (calls)", bar_svg(list(overall.diversity.tool_usage.items())[:40])),
        _figure("Failure reasons (dialogues)", bar_svg(list(overall.failure_reasons.items()))),
        _figure("Tokens per dialogue, by role", _tokens_svg(stats)),
        _figure("Judge verdicts", bar_svg(list(overall.judging.verdicts.items()))),
        "</div>",
        "<h2>Whole run</h2>",
        '<div class="plots">',
        *(f"<div>{_heading('h3', table)}{_html_table(table)}</div>" for table in overall_tables(stats)),
        "</div>",
        "<h2>Dialogues</h2>",
        _sample_note(len(shown), stats.dialogues),
        _asset("browser.html"),
        f'<script type="application/json" id="dialogues-data">{embed_json(_browser_data(shown))}</script>',
        f"<script>{script}</script>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(policy)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


@cache
def _asset(name: str) -> str:
    """A file of the package's ``assets/``: the page's style, its script or the browser's markup."""
    return (files("dialforge.report") / "assets" / name).read_text(encoding="utf-8")


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


def _heading(level: str, table: Table) -> str:
    note = f" <small>({escape(table.note)})</small>" if table.note else ""
    return f"<{level}>{escape(table.title)}{note}</{level}>"


def _html_table(table: Table) -> str:
    """The table with every cell escaped; figure columns right-aligned."""
    if not table.rows:
        return '<p class="hint">none</p>'
    head = "".join(f"<th>{escape(header)}</th>" for header in table.headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>' if index >= table.label_columns else f"<td>{escape(cell)}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cards(stats: RunStatistics) -> str:
    """The run at a glance, above the tables."""
    overall = stats.overall
    diversity = overall.diversity
    cards = [
        ("dialogues", str(stats.dialogues)),
        ("kept", str(overall.kept)),
        ("truncated", str(overall.truncated)),
        ("failed", str(overall.failed)),
        ("judge pass rate", percent(overall.judging.pass_rate)),
        ("tool error rate", percent(overall.tool_error_rate)),
        ("distinct tools", f"{diversity.distinct_tools} / {diversity.tools_offered}"),
        (
            "near-dup. first user msgs",
            f"{diversity.near_duplicate_first_user_messages} / {diversity.first_user_messages}",
        ),
        ("distinct tool sequences", str(diversity.distinct_tool_sequences)),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{escape(value)}</div><div class="k">{escape(key)}</div></div>'
            for key, value in cards
        )
        + "</div>"
    )


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def _tokens_svg(stats: RunStatistics) -> str:
    """Prompt, completion and reasoning tokens per dialogue, stacked, one bar per role."""
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
                "truncated": bool(record.get("truncated")),
                "failure": record.get("failure"),
                "verdict": judgment.get("judgment") if judgment else "unjudged",
                "judgment": judgment,
                "tools_used": used,
                "tools_offered": [(t.get("function") or t).get("name") for t in record.get("tools") or ()],
                "messages": messages,
                "tasks": record.get("tasks") or [],
                "tasks_dropped": record.get("tasks_dropped") or [],
                "stats": record.get("stats") or {},
                "usage": record.get("usage") or {},
                "guards": record.get("guards") or {},
                "persona": record.get("persona"),
                "seed": record.get("seed"),
                "prefix_messages": int(record.get("prefix_messages") or 0),
            }
        )
    return data
