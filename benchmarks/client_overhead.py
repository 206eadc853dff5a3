"""Client overhead: CPU per call, throughput and memory of chat clients at high concurrency.

Starts ``dialforge mock-server`` (fixed latency, separate process), then runs each client in
its own subprocess so CPU time and peak RSS belong to that client alone:

- ``dialforge``: ``OpenAICompatible`` (aiohttp transport, endpoint pool, retries, accounting);
- ``aiohttp``: a bare aiohttp loop posting the same bodies (the floor);
- ``openai``: the openai SDK's ``AsyncOpenAI`` with its default httpx transport.

    python benchmarks/client_overhead.py --calls 20000 --concurrency 1000 --latency-ms 1000

Ideal throughput is concurrency / latency; "CPU ms/call" is the client process's user+system
CPU time divided by the calls it made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import time
from typing import Any

SYSTEM = (
    "You are the support agent of an online bookstore. Use the tools to look up orders, customers and "
    "books; confirm before changing anything; answer briefly and cite the order id. " * 4
)
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ')}; returns the matching record as an object.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "integer"}, "note": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
    for name in ("get_order", "get_customer", "update_order_status")
]
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hi, I ordered two books last week and only one arrived. Order 1042."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": 1042}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "get_order", "content": json.dumps({"id": 1042, "lines": 2})},
    {"role": "assistant", "content": "Order 1042 has two lines; one shipped on Monday, the other is pending."},
    {"role": "user", "content": "Can you tell me when the second one ships?"},
]


async def run_dialforge(base_url: str, calls: int, concurrency: int) -> int:
    from dialforge.llm._transport import HttpTransport
    from dialforge.llm.completion import RequestOptions
    from dialforge.llm.endpoint_pool import EndpointPool
    from dialforge.llm.openai_compatible import OpenAICompatible
    from dialforge.llm.settings import ResolvedModelSettings
    from dialforge.model import ToolSpec, parse_messages

    messages = parse_messages(MESSAGES)
    options = RequestOptions(tools=tuple(ToolSpec.from_openai(t) for t in TOOLS), max_tokens=256)
    settings = ResolvedModelSettings(role="agent", model="mock-model", base_urls=(base_url,))
    transport = HttpTransport()
    client = OpenAICompatible(settings, EndpointPool([base_url], concurrency), transport)
    errors = 0

    async def one() -> None:
        nonlocal errors
        try:
            await client.complete(messages, options)
        except Exception:  # counted and reported
            errors += 1

    await _drive(one, calls, concurrency)
    await transport.close()
    return errors


async def run_aiohttp(base_url: str, calls: int, concurrency: int) -> int:
    import aiohttp
    import orjson

    body = orjson.dumps({"model": "mock-model", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 256})
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> None:
            nonlocal errors
            async with session.post(
                f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                data = orjson.loads(await resp.read())
                if resp.status != 200 or "choices" not in data:
                    errors += 1

        await _drive(one, calls, concurrency)
    return errors


async def run_openai(base_url: str, calls: int, concurrency: int) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
    errors = 0

    async def one() -> None:
        nonlocal errors
        try:
            await client.chat.completions.create(model="mock-model", messages=MESSAGES, tools=TOOLS, max_tokens=256)
        except Exception:  # counted and reported
            errors += 1

    await _drive(one, calls, concurrency)
    await client.close()
    return errors


async def _drive(one: Any, calls: int, concurrency: int) -> None:
    """Keep ``concurrency`` calls in flight until ``calls`` have been made."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


CLIENTS = {"dialforge": run_dialforge, "aiohttp": run_aiohttp, "openai": run_openai}


def worker_main(client: str, base_url: str, calls: int, concurrency: int) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    errors = asyncio.run(CLIENTS[client](base_url, calls, concurrency))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"client": client, "calls": calls, "errors": errors, "wall_s": wall, "cpu_s": cpu, "rss_mb": rss_mb})
    )


def start_server(latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "dialforge.cli.main", "mock-server", "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    match = re.search(r"(http://\S+/v1)", line)
    if not match:
        server.kill()
        raise SystemExit(f"mock-server did not start: {line!r}")
    return server, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=1_000)
    parser.add_argument("--latency-ms", type=int, default=1_000)
    parser.add_argument("--clients", default="dialforge,aiohttp,openai")
    parser.add_argument("--worker", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.url, args.calls, args.concurrency)
        return

    server, base_url = start_server(args.latency_ms)
    ideal = args.concurrency / (args.latency_ms / 1000)
    rows = []
    try:
        for client in args.clients.split(","):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    client,
                    "--url",
                    base_url,
                    "--calls",
                    str(args.calls),
                    "--concurrency",
                    str(args.concurrency),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(
        f"{args.calls} calls, concurrency {args.concurrency}, server latency {args.latency_ms} ms, "
        f"ideal {ideal:.0f} calls/s"
    )
    print(f"{'client':<10} {'CPU ms/call':>11} {'calls/s':>9} {'% ideal':>8} {'peak RSS MB':>11} {'errors':>7}")
    for row in rows:
        rate = row["calls"] / row["wall_s"]
        print(
            f"{row['client']:<10} {1000 * row['cpu_s'] / row['calls']:>11.3f} {rate:>9.0f} "
            f"{100 * rate / ideal:>7.1f}% {row['rss_mb']:>11.0f} {row['errors']:>7}"
        )
    by_name = {row["client"]: row for row in rows}
    if "dialforge" in by_name and "openai" in by_name:
        ratio = by_name["openai"]["cpu_s"] / by_name["dialforge"]["cpu_s"]
        print(f"openai SDK (httpx) uses {ratio:.1f}x the CPU per call of dialforge")


if __name__ == "__main__":
    main()
