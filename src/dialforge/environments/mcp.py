"""Tools of a Model Context Protocol server, executed for real, through the official ``mcp`` SDK.

With ``isolation: per_dialogue`` each dialogue gets its own server process working on its own copy of the
state directory, so writes are isolated and the state is that directory: ``digest`` hashes its files and
``diff`` lists the files added, changed and removed. The copy is made, and the server started, at the
dialogue's first call, holding one of ``max_servers`` slots until the dialogue ends. With ``shared`` every
dialogue talks to one server (a remote ``url``, or a server for read-only use) and nothing is isolated.

A stored dialogue is rebuilt on a fresh copy by running its calls again; a server that does not come back to
the stored digest (git commits carry their time, for one) is reported in the snapshot, never silently accepted.

Servers run in process groups of their own, each recorded in a pid file under the domain's work directory: they
are ended with their dialogue, when the factory closes, and, after a ``kill -9`` of dialforge, at the next
start. Server crashes, timeouts and protocol errors come back to the agent as tool errors and are counted in
the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from string import Template
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dialforge.environments.arguments import call_problem
from dialforge.environments.base import (
    CheckOutcome,
    ExecutedCall,
    RestoreError,
    StateDiff,
    TableDiff,
    ToolResult,
    Verification,
)
from dialforge.model.messages import Message
from dialforge.model.tasks import Check, CommandCheck
from dialforge.model.tools import ToolSpec

T = TypeVar("T")

_CONNECTION_CLOSED = -32000
"""the JSON-RPC error code the SDK gives a request whose server went away"""
_TEXT_IN_DIFF = 2000
"""characters of a changed text file shown in a diff"""


class McpError(Exception):
    """The server cannot be set up or reached: the message names the server, the problem and the fix."""


class ToolFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: list[str] | None = Field(default=None, description="only these tools (default: all)")
    exclude: list[str] = Field(default_factory=list)


class McpSettings(BaseModel):
    """A domain's MCP server (``domains[].mcp``). ``{state}`` in the command, ``env`` and ``setup`` is the
    dialogue's state directory."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1, description="a stdio server: argv")
    url: str | None = Field(default=None, description="a streamable HTTP server")
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment; ${NAME} takes NAME from dialforge's own environment"
    )
    state: Path | None = Field(default=None, description="files copied into a fresh directory per dialogue")
    setup: list[list[str]] = Field(default_factory=list, description="commands run once on the state before use")
    isolation: Literal["per_dialogue", "shared"] = "per_dialogue"
    max_servers: int = Field(default=32, ge=1, le=4096, description="server processes alive at once")
    timeout_s: float = Field(default=30.0, gt=0, description="per call")
    start_timeout_s: float = Field(default=60.0, gt=0, description="for a server to start and answer")
    tools: ToolFilter = Field(default_factory=ToolFilter)
    bind: dict[str, Any] = Field(
        default_factory=dict,
        description="arguments the server needs but the agent must not choose (e.g. repo_path: '{state}'): "
        "taken out of the tool schemas and added to every call that takes them",
    )

    @model_validator(mode="after")
    def _one_server(self) -> McpSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give the server as either command: [argv...] (stdio) or url: (streamable HTTP)")
        if self.url is not None and self.isolation != "shared":
            raise ValueError("a url server cannot be given a state per dialogue: set isolation: shared")
        return self


# --- one server --------------------------------------------------------------------------------------------------


class _Connection:
    """One running server and its client session, owned by a task of its own.

    anyio's cancel scopes (inside the SDK's transports) must be left by the task that entered them, while a
    dialogue's calls come from whichever task steps it; so requests travel to the owning task on a queue.
    """

    def __init__(self) -> None:
        self._requests: asyncio.Queue[tuple[Callable[[Any], Awaitable[Any]], asyncio.Future[Any]] | None] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def open(cls, settings: McpSettings, state: Path | None, pid_file: Path | None, errlog: Path) -> _Connection:
        connection = cls()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection._task = asyncio.create_task(connection._serve(settings, state, pid_file, errlog, ready))
        try:
            await asyncio.wait_for(ready, settings.start_timeout_s)
        except TimeoutError:
            connection.close()
            raise McpError(f"{_server_name(settings)} did not start within {settings.start_timeout_s:g} s") from None
        return connection

    async def _serve(
        self,
        settings: McpSettings,
        state: Path | None,
        pid_file: Path | None,
        errlog: Path,
        ready: asyncio.Future[None],
    ) -> None:
        from mcp import ClientSession

        try:
            with errlog.open("a", encoding="utf-8") as log:
                async with contextlib.AsyncExitStack() as stack:
                    read, write = await stack.enter_async_context(_transport(settings, state, pid_file, log))
                    session = await stack.enter_async_context(ClientSession(read, write))
                    await session.initialize()
                    ready.set_result(None)
                    while (item := await self._requests.get()) is not None:
                        request, answer = item
                        try:
                            result = await request(session)
                        except Exception as exc:
                            if not answer.done():
                                answer.set_exception(exc)
                        else:
                            if not answer.done():
                                answer.set_result(result)
        except Exception as exc:
            if not ready.done():
                ready.set_exception(McpError(f"{_server_name(settings)} failed to start: {_reason(exc)}; see {errlog}"))
        finally:
            self.closed.set()
            self._fail_waiting()
            if pid_file is not None:
                _end_process_group(pid_file)

    def _fail_waiting(self) -> None:
        while not self._requests.empty():
            item = self._requests.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(ConnectionError("the server has stopped"))

    async def request(self, request: Callable[[Any], Awaitable[T]], timeout_s: float) -> T:
        if self.closed.is_set():
            raise ConnectionError("the server has stopped")
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._requests.put_nowait((request, answer))
        closed: asyncio.Future[Any] = asyncio.ensure_future(self.closed.wait())
        try:
            waited: set[asyncio.Future[Any]] = {answer, closed}
            done, _ = await asyncio.wait(waited, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if answer in done:
            return answer.result()
        answer.cancel()
        if self.closed.is_set():
            raise ConnectionError("the server stopped during the call")
        raise TimeoutError

    def close(self) -> None:
        """Ask the owning task to end the session; the server process ends with it."""
        if self._task is not None and not self.closed.is_set():
            self._requests.put_nowait(None)

    async def wait_closed(self, timeout_s: float = 10.0) -> None:
        if self._task is None:
            return
        self.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _transport(settings: McpSettings, state: Path | None, pid_file: Path | None, log: Any) -> Any:
    """The SDK's transport context: a stdio process (in its own process group, its pid recorded) or HTTP."""
    if settings.url is not None:
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(settings.url)
    from mcp import StdioServerParameters, stdio_client

    assert settings.command is not None
    values = {"state": str(state) if state is not None else ""}
    argv = [Template(part.replace("{state}", "${state}")).safe_substitute(values) for part in settings.command]
    environment = {**os.environ, **{key: _expand(value, values) for key, value in settings.env.items()}}
    if pid_file is not None:  # the shell records its pid (the process group's) and becomes the server
        argv = ["/bin/sh", "-c", 'echo $$ > "$0"; exec "$@"', str(pid_file), *argv]
    parameters = StdioServerParameters(command=argv[0], args=argv[1:], env=environment, cwd=state)
    return stdio_client(parameters, errlog=log)


def _expand(value: str, values: dict[str, str]) -> str:
    return Template(value.replace("{state}", "${state}")).safe_substitute({**os.environ, **values})


def _server_name(settings: McpSettings) -> str:
    return f"the MCP server {settings.url or ' '.join(settings.command or [])!r}"


def _reason(exc: BaseException) -> str:
    """The innermost reason of an error, however deep the SDK's task groups wrapped it."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


def _end_process_group(pid_file: Path) -> None:
    """End the server's process group if it is still there, and forget it."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(pid_file.read_text().strip() or "0")
        if pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


# --- files as state ---------------------------------------------------------------------------------------------


def _file_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (symlinks by their target), by relative path: its blake2b."""
    hashes = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            hashes[relative] = "link:" + os.readlink(path)
        elif path.is_file():
            hashes[relative] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    return hashes


def _digest(hashes: dict[str, str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for relative, value in hashes.items():
        digest.update(f"{relative}\0{value}\n".encode())
    return digest.hexdigest()


def _shown(root: Path, relative: str) -> dict[str, Any]:
    """A changed file as the judge sees it: its path and size, and its text when it is short text."""
    path = root / relative
    row: dict[str, Any] = {"path": relative}
    with contextlib.suppress(OSError):
        data = path.read_bytes()
        row["bytes"] = len(data)
        with contextlib.suppress(UnicodeDecodeError):
            text = data.decode()
            row["text"] = text if len(text) <= _TEXT_IN_DIFF else text[:_TEXT_IN_DIFF] + " [...]"
    return row


# --- environments ---------------------------------------------------------------------------------------------


class McpEnvironments:
    """An MCP domain's environments. ``await McpEnvironments.open(...)`` prepares the initial state (a copy of
    ``state`` with ``setup`` run on it), ends servers a killed earlier run left behind, and lists the tools."""

    prompts: tuple[str, ...] = ()

    def __init__(self, settings: McpSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir.resolve()  # servers run in their state directory: every path they get is absolute
        self.initial = self.workdir / "initial"
        self._states = self.workdir / "states"
        self._pids = self.workdir / "servers"
        self._errlog = self.workdir / "servers.log"
        self._slots = asyncio.Semaphore(settings.max_servers)
        self._tools: list[ToolSpec] = []
        self._listed: list[Any] = []
        """the server's own tool descriptions, bound parameters included"""
        self._initial_hashes: dict[str, str] = {}
        self._shared: _Connection | None = None
        self._shared_lock = asyncio.Lock()
        self._live: set[McpEnvironment] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.resources: list[dict[str, Any]] = []
        """the server's resources (uri, name, description), for the goal writers"""

    @classmethod
    async def open(cls, settings: McpSettings, workdir: Path) -> McpEnvironments:
        factory = cls(settings, workdir)
        await asyncio.to_thread(factory._prepare)
        connection = await factory._connect(factory.initial if settings.state is not None else None)
        try:
            listed = await connection.request(lambda session: session.list_tools(), settings.start_timeout_s)
            with contextlib.suppress(Exception):  # resources are optional
                resources = await connection.request(lambda session: session.list_resources(), settings.timeout_s)
                factory.resources = [
                    {"uri": str(r.uri), "name": r.name, "description": r.description or ""} for r in resources.resources
                ]
        finally:
            await connection.wait_closed()
        factory._listed = list(listed.tools)
        factory._tools = _chosen_tools(listed.tools, settings.tools, set(settings.bind))
        if not factory._tools:
            raise McpError(f"{_server_name(settings)} offers no tools (after tools: include/exclude)")
        if settings.state is not None:  # listing tools may not change the state, but some servers write on start
            factory._initial_hashes = await asyncio.to_thread(_file_hashes, factory.initial)
        return factory

    def _prepare(self) -> None:
        """A clean work directory: servers of an earlier run ended, old dialogue copies gone, the initial state
        copied from ``state`` and set up."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for pid_file in self._pids.glob("*.pid"):
            _end_process_group(pid_file)
        self._pids.mkdir(exist_ok=True)
        shutil.rmtree(self._states, ignore_errors=True)
        self._states.mkdir()
        if self.settings.state is None:
            return
        if not self.settings.state.is_dir():
            raise McpError(f"mcp.state {self.settings.state} is not a directory; give the folder to copy per dialogue")
        shutil.rmtree(self.initial, ignore_errors=True)
        shutil.copytree(self.settings.state, self.initial, symlinks=True)
        for command in self.settings.setup:
            argv = [_expand(part, {"state": str(self.initial)}) for part in command]
            try:
                done = subprocess.run(argv, cwd=self.initial, capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise McpError(f"mcp.setup command {argv} cannot run: {exc}") from None
            if done.returncode != 0:
                raise McpError(f"mcp.setup command {argv} failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    async def _connect(self, state: Path | None) -> _Connection:
        pid_file = self._pids / f"{uuid.uuid4().hex}.pid" if self.settings.command is not None else None
        return await _Connection.open(self.settings, state, pid_file, self._errlog)

    def tools(self) -> list[ToolSpec]:
        return list(self._tools)

    def new(self, *, seed: int, clock: str) -> McpEnvironment:
        environment = McpEnvironment(self)
        self._live.add(environment)
        return environment

    async def restore(self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]) -> McpEnvironment:
        if snapshot.get("kind") != "mcp":
            raise RestoreError(f"not an MCP environment's snapshot: kind {snapshot.get('kind')!r}")
        environment = self.new(seed=seed, clock="")
        if self.settings.isolation == "shared":
            return environment
        for name, arguments in calls:
            await environment.call(name, arguments)
        environment.errors = Counter(snapshot.get("errors") or {})  # as stored: the replay's own were re-runs
        if (digest := environment.digest()) != snapshot.get("digest"):
            environment.replay = f"replaying {len(calls)} calls gave the state {digest}, not {snapshot.get('digest')}"
        elif snapshot.get("replay"):
            environment.replay = snapshot["replay"]
        return environment

    def view(self, *, seed: int, tokens: int) -> str:
        """The server's resources and the state's files (their text, in a seeded order, as far as ``tokens``
        allows; a repository's ``.git`` is left out), for the goal writers."""
        lines = [f"- resource {r['uri']}: {r['name']}. {r['description']}".rstrip() for r in self.resources]
        if self.settings.state is not None and self.settings.isolation == "per_dialogue":
            files = [path for path in self._initial_hashes if not path.startswith(".git/")]
            random.Random(seed).shuffle(files)
            budget = tokens * 4 - sum(map(len, lines))
            for relative in files:
                shown = _shown(self.initial, relative)
                text = shown.get("text")
                entry = f"--- {relative} ({shown.get('bytes', 0)} bytes)" + (f"\n{text}" if text is not None else "")
                if len(entry) > budget:
                    lines.append(f"--- {relative} ({shown.get('bytes', 0)} bytes, not shown)")
                    continue
                lines.append(entry)
                budget -= len(entry)
        return "\n".join(lines)

    async def shared_connection(self) -> _Connection:
        async with self._shared_lock:
            if self._shared is None or self._shared.closed.is_set():
                self._shared = await self._connect(None)
            return self._shared

    async def close(self) -> None:
        """End every server still running (dialogues cut short by an interruption) and the shared one."""
        for environment in list(self._live):
            await environment.aclose()
        await asyncio.gather(*self._closing)
        if self._shared is not None:
            await self._shared.wait_closed()


def _chosen_tools(tools: Sequence[Any], chosen: ToolFilter, bound: set[str]) -> list[ToolSpec]:
    specs = []
    for tool in tools:
        if (chosen.include is not None and tool.name not in chosen.include) or tool.name in chosen.exclude:
            continue
        parameters = dict(tool.input_schema or {"type": "object", "properties": {}})
        if bound & set(parameters.get("properties") or {}):
            parameters["properties"] = {k: v for k, v in parameters["properties"].items() if k not in bound}
            parameters["required"] = [name for name in parameters.get("required") or () if name not in bound]
        specs.append(
            ToolSpec(
                name=tool.name,
                description=tool.description or tool.title or tool.name,
                parameters=parameters,
                returns=tool.output_schema,
            )
        )
    return specs


class McpEnvironment:
    """One dialogue's server and state directory; started at the first call."""

    def __init__(self, factory: McpEnvironments) -> None:
        self.factory = factory
        self.settings = factory.settings
        self._specs = {tool.name: tool for tool in factory.tools()}
        self._takes = {tool.name: _parameter_names(tool) for tool in factory._listed}
        self._state: Path | None = None
        self._connection: _Connection | None = None
        self._slot = False
        self._lock = asyncio.Lock()
        self.errors: Counter[str] = Counter()
        """server trouble by kind (timeout, crash, protocol), shown in the snapshot"""
        self.replay: str | None = None
        """why this state, rebuilt after a restart, may differ from the one stored"""

    def tools(self) -> list[ToolSpec]:
        return list(self._specs.values())

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        if (problem := call_problem(name, arguments, self._specs)) is not None:
            return problem
        try:
            connection = await self._connected()
        except McpError as exc:
            self.errors["start"] += 1
            return ToolResult.failure("unavailable", f"{name}: the service cannot be reached: {exc}")
        try:
            sent = {**arguments, **self._bound(name)}
            result = await connection.request(lambda session: session.call_tool(name, sent), self.settings.timeout_s)
        except TimeoutError:
            self.errors["timeout"] += 1
            await self._drop(connection)  # a server stuck on one call is stuck for the next
            return ToolResult.failure("timeout", f"{name}: no answer within {self.settings.timeout_s:g} s")
        except Exception as exc:  # the SDK's MCPError and anything the protocol layer raises
            if isinstance(exc, ConnectionError) or getattr(exc, "code", None) == _CONNECTION_CLOSED:
                self.errors["crash"] += 1
                await self._drop(connection)
                return ToolResult.failure("unavailable", f"{name}: the service stopped: {exc}")
            self.errors["protocol"] += 1
            return _protocol_failure(name, exc)
        return _result(name, result)

    def _bound(self, name: str) -> dict[str, Any]:
        """The bound arguments this tool takes, ``{state}`` filled in with this dialogue's directory."""
        values = {"state": str(self._state or "")}
        return {
            key: _expand(value, values) if isinstance(value, str) else value
            for key, value in self.settings.bind.items()
            if key in self._takes.get(name, ())
        }

    async def _connected(self) -> _Connection:
        if self.settings.isolation == "shared":
            return await self.factory.shared_connection()
        async with self._lock:
            if self._connection is not None and not self._connection.closed.is_set():
                return self._connection
            if not self._slot:
                await self.factory._slots.acquire()
                self._slot = True
            if self._state is None:
                self._state = await asyncio.to_thread(self._copy_state)
            self._connection = await self.factory._connect(self._state)
            return self._connection

    def _copy_state(self) -> Path:
        directory = self.factory._states / uuid.uuid4().hex
        if self.settings.state is not None:
            shutil.copytree(self.factory.initial, directory, symlinks=True)
        else:
            directory.mkdir()
        return directory

    async def _drop(self, connection: _Connection) -> None:
        await connection.wait_closed()
        if self._connection is connection:
            self._connection = None

    def _hashes(self) -> dict[str, str]:
        if self.settings.isolation == "shared" or self.settings.state is None:
            return {}
        if self._state is None:
            return self.factory._initial_hashes
        return _file_hashes(self._state)

    def snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = {"kind": "mcp", "digest": self.digest()}
        if self.errors:
            snapshot["errors"] = dict(self.errors)
        if self.replay:
            snapshot["replay"] = self.replay
        return snapshot

    def digest(self) -> str:
        return _digest(self._hashes())

    def diff(self, other: McpEnvironment) -> StateDiff:
        """Files added, changed and removed from ``other``'s state to this one's (pseudo-table ``files``)."""
        before, after = other._hashes(), self._hashes()
        root, old_root = self._state or self.factory.initial, other._state or self.factory.initial
        files = TableDiff(
            inserted=[_shown(root, path) for path in after if path not in before],
            updated=[
                {"key": path, "before": _shown(old_root, path), "after": _shown(root, path)}
                for path in after
                if path in before and before[path] != after[path]
            ],
            deleted=[{"path": path} for path in before if path not in after],
        )
        return StateDiff() if files.empty else StateDiff(tables={"files": files})

    def verify(self, checks: Sequence[Check]) -> Verification:
        """The files changed since the dialogue began, and each command check run on the final state directory."""
        initial = McpEnvironment(self.factory)
        return Verification(
            initial_digest=initial.digest(),
            final_digest=self.digest(),
            diff=self.diff(initial),
            checks=[self._outcome(check) for check in checks],
        )

    def _outcome(self, check: Check) -> CheckOutcome:
        if not isinstance(check, CommandCheck):
            return CheckOutcome.cannot_run(check, "an MCP server's files")
        if self.settings.isolation == "shared" or self.settings.state is None:
            return CheckOutcome.of(check, passed=False, detail="no state directory to check: the server is shared")
        root = self._state or self.factory.initial
        argv = [_expand(part, {"state": str(root)}) for part in check.command]
        try:
            done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=self.settings.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CheckOutcome.of(check, passed=False, detail=f"the check could not run: {exc}")
        said = (done.stdout.strip() or done.stderr.strip())[-300:]
        detail = f"the check exited with {done.returncode}" + (f": {said}" if said else "")
        return CheckOutcome.of(check, passed=done.returncode == 0, detail=detail)

    def close(self) -> None:
        """End the server and remove the state copy (in the background: the engine's ``close`` is not async)."""
        task = asyncio.get_running_loop().create_task(self.aclose())
        self.factory._closing.add(task)
        task.add_done_callback(self.factory._closing.discard)

    async def aclose(self) -> None:
        self.factory._live.discard(self)
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.wait_closed()
        if self._slot:
            self._slot = False
            self.factory._slots.release()
        if self._state is not None:
            await asyncio.to_thread(shutil.rmtree, self._state, True)
            self._state = None


def _result(name: str, result: Any) -> ToolResult:
    """A ``tools/call`` result as the agent reads it: structured content when given, else the text blocks."""
    texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
    others = [block.type for block in result.content if getattr(block, "type", None) != "text"]
    text = "\n".join(texts) + "".join(f"\n[{kind} content]" for kind in others)
    if result.is_error:
        return ToolResult.failure("execution_error", f"{name}: {text.strip() or 'the tool reported an error'}")
    if result.structured_content is not None:
        return ToolResult(content=result.structured_content)
    return ToolResult(content=text)


def _parameter_names(tool: Any) -> set[str]:
    return set((tool.input_schema or {}).get("properties") or {})


def _protocol_failure(name: str, exc: Exception) -> ToolResult:
    """A JSON-RPC error: unknown tool and invalid parameters are the caller's, the rest the service's."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    if code == -32602:
        return ToolResult.failure("invalid_arguments", f"{name}: {message}")
    if code == -32601 or "unknown tool" in message.lower():
        return ToolResult.failure("unknown_tool", f"{name}: {message}")
    return ToolResult.failure("execution_error", f"{name}: {message}")
