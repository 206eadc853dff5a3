"""The command line keeps its contract: every command exists, and unfinished ones say so."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    for command in ("run", "check-server", "tools", "extend", "export", "stats", "report", "mock-server"):
        assert re.search(rf"^\W*{command}\s", result.output, re.MULTILINE), command
    tools = runner.invoke(app, ["tools", "--help"])
    assert "scaffold" in tools.output and "check" in tools.output


def test_run_accepts_the_documented_options() -> None:
    result = runner.invoke(app, ["run", "--help"], terminal_width=200)

    for option in ("--out", "--dry-run", "--limit", "--concurrency", "--executor", "--skip-server-check"):
        assert option in result.output


@pytest.mark.parametrize("command", ["export", "stats", "report"])
def test_commands_on_a_missing_run_directory_say_so_in_one_line(command: str, tmp_path: Path) -> None:
    extra = {"export": ["--format", "openai", "-o", str(tmp_path / "out.jsonl")], "report": ["-o", "r.html"]}
    result = runner.invoke(app, [command, str(tmp_path / "nope"), *extra.get(command, [])])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nope" in result.stderr


def test_mock_server_refuses_unknown_fault_kinds() -> None:
    result = runner.invoke(app, ["mock-server", "--faults", "rate_limit,meteor"], terminal_width=200)

    assert result.exit_code == 2
    assert "meteor" in result.output


async def test_mock_server_command_serves_until_terminated() -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "dialforge.cli.main", "mock-server", "--port", "0", "--latency-ms", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        match = re.fullmatch(r"mock-server listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match and match.group(2) != "0", line
        base_url = match.group(1)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(base_url.removesuffix("/v1") + "/health") as response:
                assert response.status == 200
            body = {"model": "mock-model", "messages": [{"role": "user", "content": "Hello?"}]}
            async with session.post(f"{base_url}/chat/completions", json=body) as response:
                assert response.status == 200
                assert (await response.json())["choices"][0]["message"]["content"]
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
