"""The HTML report: one self-contained file, generated text escaped, a dialogue browser that filters.

The browser test (``slow``; skipped without Chromium) opens the report in headless Chromium and drives it
over the Chrome DevTools Protocol with a small aiohttp websocket client: it checks the list is populated,
that the filters work, that no script from the data ran, and writes a screenshot to pytest's tmp_path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import itertools
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.report.html import embed_json, write_report
from dialforge.report.stats import run_statistics
from dialforge.report.tables import group_tables, overall_tables
from dialforge.report.text import render_text
from test_stats import record

runner = CliRunner()

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "</script><script>window.__pwned = 3</script>",
    "<svg onload=window.__pwned=4>",
    "<!-- <script>window.__pwned = 5</script>",
]


def hostile_records() -> list[dict[str, Any]]:
    """Five dialogues, two domains, two modes; hostile text in every place the report shows text."""
    evil = record(
        "evil",
        domain="<img src=x onerror=window.__pwned=6>",
        first_user=HOSTILE[0] + " " + HOSTILE[1],
        calls=("a",),
        turns=4,
        steps=1,
        verdict="invalid",
        status="failed",
        failure=HOSTILE[2] + ": boom",
        guards={HOSTILE[3]: 1},
    )
    evil["messages"][2]["reasoning"] = HOSTILE[4]
    evil["messages"][2]["tool_calls"][0]["function"]["arguments"] = json.dumps({"q": HOSTILE[2]})
    evil["messages"][3]["content"] = json.dumps({"rows": [HOSTILE[3]]})
    evil["messages"][-1]["content"] = HOSTILE[2]
    evil["judgment"]["reasoning"] = HOSTILE[1]
    evil["tasks"] = [
        {
            "id": "t",
            "description": HOSTILE[0],
            "difficulty": "easy",
            "subtasks": [HOSTILE[1]],
            "tools": ["a"],
            "checks": [],
        }
    ]
    return [
        record("s1", domain="shop", calls=("a", "b"), turns=6, steps=2, first_user="where is my parcel"),
        record("s2", domain="shop", calls=("c",), turns=3, steps=1, verdict="invalid", first_user="refund please"),
        record("b1", domain="bank", mode="task", calls=("b",), turns=3, steps=1, first_user="balance?"),
        record("b2", domain="bank", mode="task", turns=2, verdict=None, first_user="hi"),
        evil,
    ]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hostile_records()))
    return write_report(run_dir, tmp_path / "out" / "report.html")


def test_report_is_one_self_contained_file(report: Path) -> None:
    text = report.read_text()

    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", text, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\ssrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link\b|@import|url\(", text, re.IGNORECASE)
    assert "default-src 'none'" in text or "default-src &#x27;none&#x27;" in text
    assert text.count("<script") == 2 and text.count("</script>") == 2
    for name in ("Turns per dialogue", "Steps per dialogue", "Tool usage", "Failure reasons", "Tokens per dialogue"):
        assert name in text
    assert text.count("<svg") >= 5


def test_hostile_text_is_escaped_everywhere(report: Path) -> None:
    text = report.read_text()

    for hostile in [*HOSTILE, "<img src=x onerror=window.__pwned=6>"]:
        assert hostile not in text
    assert "<img" not in text and "<svg onload" not in text and "<script>window" not in text
    assert "&lt;img src=x onerror=window.__pwned=6&gt;" in text  # the domain, in the server-side tables
    embedded = re.search(r'<script type="application/json" id="dialogues-data">(.*?)</script>', text, re.S)
    assert embedded is not None
    data = json.loads(embedded.group(1))
    evil = next(d for d in data if d["id"] == "evil")
    assert evil["messages"][1]["content"] == HOSTILE[0] + " " + HOSTILE[1]
    assert evil["judgment"]["reasoning"] == HOSTILE[1]


def test_report_and_stats_show_the_same_tables(report: Path) -> None:
    stats = run_statistics(hostile_records())
    page, text = report.read_text(), render_text(stats)

    for table in [*group_tables(stats), *overall_tables(stats)]:
        assert html.escape(table.title) in page and table.title in text
        for row in table.rows:
            for cell in row:
                assert f">{html.escape(cell)}</td>" in page and cell in text


def embedded_ids(report: Path) -> list[str]:
    found = re.search(r'<script type="application/json" id="dialogues-data">(.*?)</script>', report.read_text(), re.S)
    assert found is not None
    return [dialogue["id"] for dialogue in json.loads(found.group(1))]


def test_a_large_run_shows_a_fixed_sample_and_counts_every_dialogue(tmp_path: Path) -> None:
    records = [record(f"d{i:03}", domain="shop", calls=("a",), turns=2, steps=1) for i in range(60)]
    ids = {r["id"] for r in records}
    shuffled = tmp_path / "shuffled"
    for run_dir, ordered in ((tmp_path / "run", records), (shuffled, records[::-1])):
        run_dir.mkdir()
        (run_dir / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ordered))

    report = write_report(tmp_path / "run", tmp_path / "a.html", max_dialogues=10)
    shown = embedded_ids(report)
    assert len(shown) == 10 and set(shown) <= ids
    assert shown == sorted(shown), "the sample keeps the order of the file"
    assert set(embedded_ids(write_report(shuffled, tmp_path / "b.html", max_dialogues=10))) == set(shown)
    assert "holds 10 of the 60 dialogues" in report.read_text()
    assert ">60<" in report.read_text(), "the summary counts all of them"
    whole = write_report(tmp_path / "run", tmp_path / "c.html")
    assert sorted(embedded_ids(whole)) == sorted(ids) and "The browser holds" not in whole.read_text()
    with pytest.raises(ValueError, match="at least 1"):
        write_report(tmp_path / "run", tmp_path / "d.html", max_dialogues=0)


def test_embed_json_cannot_close_the_script_element() -> None:
    text = embed_json({"x": "</script><!--\u2028&"})

    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"x": "</script><!--\u2028&"}


def test_cli_report(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    output = tmp_path / "report.html"

    missing = runner.invoke(app, ["report", str(run_dir), "-o", str(output)])
    assert not output.exists()
    (run_dir / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hostile_records()))
    written = runner.invoke(app, ["report", str(run_dir), "-o", str(output)])

    assert missing.exit_code == 2 and "dialogues.jsonl" in missing.stderr
    assert written.exit_code == 0, written.output
    assert output.is_file() and "evil" in output.read_text()


def chromium_path() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1400,1800",
)


class Page:
    """A page over the Chrome DevTools Protocol: send a command, get its result."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.socket.send_json({"id": message_id, "method": method, "params": params})
        while True:
            reply = await asyncio.wait_for(self.socket.receive_json(), 30)
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]

    async def js(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while not await self.js(expression):
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {expression}"
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def open_in_chromium(executable: str, url: str, profile: Path) -> AsyncIterator[Page]:
    process = await asyncio.create_subprocess_exec(
        executable,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            assert line, "chromium exited before opening DevTools"
            if match := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line):
                port = int(match[1])
        async with aiohttp.ClientSession() as session:
            page_socket = None
            for _ in range(100):
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json(content_type=None)
                page_socket = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
                if page_socket:
                    break
                await asyncio.sleep(0.1)
            assert page_socket, "no page target"
            async with session.ws_connect(page_socket, max_msg_size=0) as socket:
                yield Page(socket)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="needs Chromium: apt-get install chromium")
async def test_report_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    executable = chromium_path()
    assert executable is not None

    async with open_in_chromium(executable, report.resolve().as_uri(), tmp_path / "profile") as page:
        await page.wait_for("document.readyState === 'complete' && document.body.dataset.shown !== undefined")

        # it renders: statistics, plots and the dialogue list
        assert await page.js("document.querySelectorAll('#dialogue-list li').length") == 5
        assert await page.js("document.querySelectorAll('svg rect').length") > 5
        assert await page.js("document.getElementById('count').textContent") == "5 of 5 dialogues"

        async def choose(name: str, value: str) -> list[str]:
            await page.js(
                f"(() => {{ const s = document.getElementById('f-{name}'); s.value = {json.dumps(value)};"
                " s.dispatchEvent(new Event('change')); })()"
            )
            return await page.js("[...document.querySelectorAll('#dialogue-list li')].map(li => li.dataset.id)")

        assert await choose("domain", "shop") == ["s1", "s2"]
        assert await choose("verdict", "invalid") == ["s2"]
        assert await choose("domain", "") == ["s2", "evil"]
        assert await choose("verdict", "") == ["s1", "s2", "b1", "b2", "evil"]
        assert await choose("tool", "b") == ["s1", "b1"]
        assert await choose("mode", "task") == ["b1"]
        assert await page.js("document.getElementById('count').textContent") == "1 of 5 dialogues"
        await choose("tool", "")
        assert await choose("mode", "") == ["s1", "s2", "b1", "b2", "evil"]
        await page.js(
            "document.getElementById('f-text').value = 'parcel';"
            "document.getElementById('f-text').dispatchEvent(new Event('input'))"
        )
        assert await page.js("[...document.querySelectorAll('#dialogue-list li')].map(li => li.dataset.id)") == ["s1"]
        await page.js(
            "document.getElementById('f-text').value = '';"
            "document.getElementById('f-text').dispatchEvent(new Event('input'))"
        )

        # open the hostile dialogue by clicking it: its markup shows as text, and none of it ran
        await page.js("document.querySelector('#dialogue-list li[data-id=\"evil\"]').click()")
        view = await page.js("document.getElementById('dialogue-view').innerText")
        assert HOSTILE[0] in view and HOSTILE[1] in view and HOSTILE[2] in view
        await page.js("document.querySelectorAll('#dialogue-view details').forEach(d => d.open = true)")
        assert HOSTILE[4] in await page.js("document.getElementById('dialogue-view').innerText")
        assert await page.js("document.querySelectorAll('#dialogue-view img, #dialogue-view svg').length") == 0
        assert await page.js("document.querySelectorAll('script').length") == 2
        assert await page.js("document.querySelectorAll('body img').length") == 0
        await asyncio.sleep(0.3)  # an onerror handler would have run by now
        assert await page.js("typeof window.__pwned") == "undefined"

        screenshot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path = tmp_path / "report.png"
        path.write_bytes(base64.b64decode(screenshot["data"]))
        print(f"screenshot: {path}")
        assert path.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.skipif(chromium_path() is None, reason="needs Chromium: apt-get install chromium")
async def test_long_values_are_cut_and_the_list_previews_first_messages_in_headless_chromium(tmp_path: Path) -> None:
    """A value of megabytes without a space (which hung the page when laid out whole) shows cut, with a button
    that shows all of it; the list shows each dialogue's first user message."""
    blob = "".join(chr(ord("a") + index % 26) for index in range(2_000_000))
    long = record("long", calls=("a",), first_user=blob)
    long["messages"][3]["content"] = json.dumps({"rows": [{"data": blob}]})
    asks = "Could you tell me where my parcel is? " * 10
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rows = [record("short", first_user="where is my parcel"), record("asks", first_user=asks), long]
    (run_dir / "dialogues.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = write_report(run_dir, tmp_path / "report.html")
    executable = chromium_path()
    assert executable is not None

    async with open_in_chromium(executable, report.resolve().as_uri(), tmp_path / "profile") as page:
        await page.wait_for("document.readyState === 'complete' && document.body.dataset.shown !== undefined")

        previews = await page.js("[...document.querySelectorAll('#dialogue-list li .preview')].map(p => p.textContent)")
        assert previews == ["where is my parcel", asks[:160] + "…", blob[:160] + "…"]
        await page.js("document.querySelector('#dialogue-list li[data-id=\"long\"]').click()")
        view = "document.getElementById('dialogue-view')"
        assert await page.js(f"{view}.innerText.length") < 20_000
        buttons = f"[...{view}.querySelectorAll('button.more')]"
        assert await page.js(f"{buttons}.map(b => b.textContent)") == [
            "show all 2,000,000 characters",
            f"show all {len(json.dumps({'rows': [{'data': blob}]}, indent=2)):,} characters",
        ]
        user_text = f"{view}.querySelector('.msg.user .text')"
        assert await page.js(f"{user_text}.textContent") == blob[:4000] + "…"

        await page.js(f"{buttons}[0].click()")
        assert await page.js(f"{user_text}.textContent.length") == len(blob)
        assert await page.js(f"{user_text}.textContent.endsWith({json.dumps(blob[-50:])})")
        assert await page.js(f"{buttons}[0].textContent") == "show the first 4,000 characters"
        await page.js(f"{buttons}[0].click()")
        assert await page.js(f"{user_text}.textContent.length") == 4001
