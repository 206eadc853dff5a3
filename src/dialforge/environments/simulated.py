"""Tools whose results a model writes: the environment of the ``task`` and ``user`` pipelines.

The model plays the domain's backend service. What keeps it honest is the call log: every earlier call of the
dialogue and its result goes into the prompt, so the same id yields the same entity and created records persist.
The log is the whole state: ``digest`` hashes it, ``snapshot`` persists it, ``SimulatedEnvironments.restore`` reads
it back.

The reply is requested with a JSON schema, a root ``anyOf`` of two closed objects: ``{"result": <the tool's
return schema>}`` or ``{"error": {"kind", "message"}}``. Chosen over ``{"result": ... | null, "error": ... |
null}`` because every value that satisfies the ``anyOf`` means exactly one thing, while the nullable form
admits both or neither; and because guided decoding (vLLM, llama.cpp) supports ``anyOf`` everywhere, unlike
``minProperties``/``maxProperties``. The dry-run model samples one branch at random, so about half of its
simulated calls fail, always with a well-formed error. OpenAI's strict mode refuses a root ``anyOf``; it is
off here anyway, since generated return schemas have optional fields, which strict mode refuses too.

The error ``kind`` is an ``enum`` of the ``ToolErrorKind`` values (less ``unknown_tool`` and the transient faults)
rather than a free string mapped afterwards: a constrained server can only write one of them, the client's repair
round corrects a free one, and the dry-run model reports real kinds instead of random words.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, get_args

import orjson

from dialforge.environments.arguments import call_problem
from dialforge.environments.base import (
    ExecutedCall,
    RestoreError,
    StateDiff,
    TableDiff,
    ToolError,
    ToolErrorKind,
    ToolResult,
)
from dialforge.json_schema.bounds import bounded
from dialforge.llm.completion import RequestOptions, ResponseSchema
from dialforge.llm.errors import ModelOutputError
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import LONG_TEXT_CHARS, RESULT_ITEMS
from dialforge.model.dialogue import ToolFaultKind
from dialforge.model.messages import AssistantMessage, Message, ToolMessage, UserMessage
from dialforge.model.tasks import Check
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt, render_section, service_section

FIRST_DAY = date(2023, 1, 1)
LAST_DAY = date(2026, 12, 31)
OPENING_HOURS = range(9, 19)

ANY_RESULT: dict[str, Any] = {"type": ["object", "array"]}
"""What a tool without a return schema may return."""

SERVICE_ERROR_KINDS = [
    kind for kind in get_args(ToolErrorKind) if kind != "unknown_tool" and kind not in get_args(ToolFaultKind)
]
"""What a simulated service may report about a call: ``unknown_tool`` is the environment's own, decided before the
model, and transient faults (a timeout, an unavailable or rate-limited service) are injected by the engine at the
configured rate (``dialogue.tool_faults``), never at a rate a model picks."""

ERROR_REPLY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": SERVICE_ERROR_KINDS},
                "message": {"type": "string", "minLength": 1, "maxLength": LONG_TEXT_CHARS},
            },
            "required": ["kind", "message"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}


def random_reference_time(seed: int) -> str:
    """A seeded ISO date-time ("2024-03-14T10:27:00") between 2023 and 2026, during opening hours."""
    rng = random.Random(seed)
    day = FIRST_DAY + timedelta(days=rng.randrange((LAST_DAY - FIRST_DAY).days + 1))
    moment = time(rng.choice(OPENING_HOURS), rng.randrange(60))
    return datetime.combine(day, moment).isoformat(timespec="seconds")


def reply_format(tool: ToolSpec) -> ResponseSchema:
    """The schema a simulated reply for ``tool`` must satisfy (see the module docstring).

    The return schema's definitions move to the root, where its ``#/$defs/...`` references now point. Its texts
    and lists get the bounds of ``llm/reply_limits.py`` where it sets none, so a simulated result cannot run on.
    """
    returns = bounded(tool.returns or ANY_RESULT, max_length=LONG_TEXT_CHARS, max_items=RESULT_ITEMS)
    returns.pop("$schema", None)
    definitions: dict[str, Any] = {key: returns.pop(key) for key in ("$defs", "definitions") if key in returns}
    result_reply = {
        "type": "object",
        "properties": {"result": returns},
        "required": ["result"],
        "additionalProperties": False,
    }
    return ResponseSchema(name="tool_response", json_schema={"anyOf": [result_reply, ERROR_REPLY], **definitions})


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _part(section: str, /, **values: object) -> str:
    """A piece of the request that depends on the call and the log."""
    return render_section("tool_simulator_parts", section, **values)


def _lines(values: Sequence[Any]) -> str:
    return "\n".join(orjson.dumps(value).decode() for value in values)


class SimulatedEnvironment:
    """The domain's backend, played by a model that sees the tool, its return schema and the call log.

    Each call is given the conversation so far: the user's messages go into the prompt, so that results match
    what the customer said (names, ids, the order of events).
    """

    def __init__(
        self,
        model: ChatModel,
        tools: Sequence[ToolSpec],
        *,
        domain: str,
        reference_time: str,
        description: str = "",
        seed: int = 0,
        log: Sequence[dict[str, Any]] = (),
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        if len(self._tools) != len(tools):
            raise ValueError("tool names must be unique")
        self._formats = {tool.name: reply_format(tool) for tool in tools}
        self._weekday = f"{datetime.fromisoformat(reference_time):%A}"  # a bad time fails here, not mid-dialogue
        self.model = model
        self.domain = domain
        self.description = description
        self.reference_time = reference_time
        self.seed = seed
        self._log = [dict(entry) for entry in log]

    @property
    def log(self) -> tuple[dict[str, Any], ...]:
        """Every call the service answered, oldest first: ``{name, arguments, result}`` or ``{..., error}``."""
        return tuple(self._log)

    def tools(self) -> list[ToolSpec]:
        return list(self._tools.values())

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        """The service's answer; calls the real API would reject outright never reach the model.

        A reply that stays invalid after the client's repair round becomes an ``execution_error`` and is not
        logged (the service did nothing); other ``ModelError``s propagate to the engine.
        """
        if problem := call_problem(name, arguments, self._tools):
            return problem
        tool = self._tools[name]
        try:
            completion = await self.model.complete(
                [UserMessage(content=self._prompt(tool, arguments, conversation))],
                RequestOptions(response_format=self._formats[name], seed=self.seed + len(self._log)),
            )
        except ModelOutputError as exc:
            reason = exc.kind.replace("_", " ")
            return ToolResult.failure("execution_error", f"the service returned an invalid response: {reason}")
        reply = completion.parsed
        entry: dict[str, Any] = {"name": name, "arguments": arguments}
        if "error" in reply:
            error = ToolError(**reply["error"])
            entry["error"] = error.model_dump(exclude_defaults=True)
            result = ToolResult(error=error)
        else:
            entry["result"] = reply["result"]
            result = ToolResult(content=reply["result"])
        self._log.append(entry)
        return result

    def _prompt(self, tool: ToolSpec, arguments: dict[str, Any], conversation: Sequence[Message]) -> str:
        said = [message.content for message in conversation if message.role == "user"]
        returns = (
            _part("returns", schema=orjson.dumps(tool.returns).decode())
            if tool.returns is not None
            else _part("no_returns")
        )
        return render_prompt(
            "tool_simulator",
            domain=self.domain,
            service=service_section(self.description),
            now=f"{self._weekday}, {self.reference_time}",
            user_messages=_lines(said) or _part("nothing_said"),
            log=_lines(self._seen_calls(conversation) if conversation else self._log) or _part("no_calls"),
            tool=orjson.dumps(tool.to_openai()["function"]).decode(),
            returns=returns,
            call=orjson.dumps({"name": tool.name, "arguments": arguments}).decode(),
        )

    def _seen_calls(self, conversation: Sequence[Message]) -> list[dict[str, Any]]:
        """The calls to this service the conversation shows answered, oldest first, as the log writes them: a
        continued conversation's own calls included, so that new results agree with what it was told before."""
        answers = {m.tool_call_id: m.content for m in conversation if isinstance(m, ToolMessage)}
        seen = []
        for message in conversation:
            for call in message.tool_calls or () if isinstance(message, AssistantMessage) else ():
                if call.name not in self._tools or call.id not in answers:
                    continue
                try:
                    arguments: Any = call.parsed_arguments()
                except ValueError:
                    arguments = call.function.arguments
                try:
                    answer = orjson.loads(answers[call.id])
                except orjson.JSONDecodeError:
                    answer = answers[call.id]
                failed = isinstance(answer, dict) and set(answer) == {"error"}
                seen.append({"name": call.name, "arguments": arguments, **(answer if failed else {"result": answer})})
        return seen

    def digest(self) -> str:
        """blake2b of the log's canonical JSON: equal logs, equal digests."""
        return hashlib.blake2b(_canonical(self._log), digest_size=16).hexdigest()

    def diff(self, other: SimulatedEnvironment) -> StateDiff:
        """Calls this log has beyond what it shares with ``other``'s (inserted), and ``other``'s own (deleted).

        Everything lives in one pseudo-table ``calls``; a fork compared with its parent has only insertions.
        """
        shared = 0
        for mine, theirs in zip(self._log, other._log, strict=False):
            if _canonical(mine) != _canonical(theirs):
                break
            shared += 1
        calls = TableDiff(inserted=self._log[shared:], deleted=other._log[shared:])
        return StateDiff() if calls.empty else StateDiff(tables={"calls": calls})

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data, for ``restore``; a deep copy, which later calls leave as it is."""
        return {
            "kind": "simulated",
            "reference_time": self.reference_time,
            "log": orjson.loads(orjson.dumps(self._log)),
        }

    def verify(self, checks: Sequence[Check]) -> None:
        """Nothing real to check: the results were written by a model."""
        return None

    def close(self) -> None:
        """Holds nothing but its log."""


class SimulatedEnvironments:
    """A domain whose tools a model plays: each dialogue starts with an empty call log at its own 'now'."""

    prompts: tuple[str, ...] = ("tool_simulator", "tool_simulator_parts", "service_section")
    """The packaged prompts its requests are made of."""

    def __init__(self, model: ChatModel, tools: Sequence[ToolSpec], *, domain: str, description: str = "") -> None:
        self.model = model
        self._tools = list(tools)
        self.domain = domain
        self.description = description

    def tools(self) -> list[ToolSpec]:
        return list(self._tools)

    def new(self, *, seed: int, clock: str) -> SimulatedEnvironment:
        return SimulatedEnvironment(
            self.model, self._tools, domain=self.domain, reference_time=clock, description=self.description, seed=seed
        )

    async def restore(
        self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]
    ) -> SimulatedEnvironment:
        """The environment ``snapshot`` describes; it continues the log (and its seeds) where it stopped."""
        if snapshot.get("kind") != "simulated":
            raise RestoreError(f"not a simulated environment's snapshot: kind {snapshot.get('kind')!r}")
        return SimulatedEnvironment(
            self.model,
            self._tools,
            domain=self.domain,
            reference_time=snapshot["reference_time"],
            description=self.description,
            seed=seed,
            log=snapshot["log"],
        )

    async def close(self) -> None:
        """Nothing outlives its dialogue."""
