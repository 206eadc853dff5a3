"""What each configured server can do, asked before a run: a few tiny real requests per endpoint and model.

A server can accept every request and still be unfit: llama.cpp with a chat template that has no tool support
drops the tools from the prompt without a word, ignores ``tool_choice`` and refuses any history with a tool
message, and a run against it learns that only from its statistics at the end. So each distinct base URL and
model of the roles is probed once: is the model listed, are the tools rendered (the prompt's token count with and
without the same tools), do forced tool choices return parsed tool calls, is a tool message in the history
accepted, is ``response_format`` json_schema honoured, is there reasoning, are cached tokens reported. Each role
then gets what it needs or a problem with its fix: the agent needs tools rendered, tool calls and tool messages;
the roles that answer in JSON need json_schema, or ``structured_output: prompt``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field

from dialforge.json_schema.checks import schema_violations
from dialforge.llm._transport import HttpTransport, RetryPolicy
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import ROLES, Completion, RequestOptions, ResponseSchema, Role
from dialforge.llm.endpoint_pool import EndpointPool
from dialforge.llm.errors import ModelError, ModelRequestRejected
from dialforge.llm.openai_compatible import OpenAICompatible
from dialforge.llm.settings import ModelsConfig, ResolvedModelSettings
from dialforge.model.messages import AssistantMessage, FunctionCall, Message, ToolCall, ToolMessage, UserMessage
from dialforge.model.tools import ToolSpec

PROBE_TIMEOUT_S = 60.0
"""Seconds each probe may take: enough for a server that loads its model on the first request."""
PROBE_TOKENS = 48
"""Completion tokens a probe may spend: room for one short tool call or JSON object, no more."""

Check = Literal[
    "reachable",
    "model_listed",
    "tools_rendered",
    "tool_choice_required",
    "tool_choice_named",
    "tool_messages",
    "json_schema",
    "reasoning",
    "cached_tokens",
]
CHECKS: tuple[Check, ...] = get_args(Check)
CHECK_LABELS: dict[Check, str] = {
    "reachable": "answers chat requests",
    "model_listed": "GET /models lists the model",
    "tools_rendered": "tools rendered in the prompt",
    "tool_choice_required": 'tool_choice "required" returns tool_calls',
    "tool_choice_named": "a named tool_choice returns that call",
    "tool_messages": "accepts tool calls and tool messages in the history",
    "json_schema": "honours response_format json_schema",
    "reasoning": "returns reasoning",
    "cached_tokens": "reports cached prompt tokens",
}
STRUCTURED_ROLES: tuple[Role, ...] = ("generator", "user", "tool", "judge")
"""The roles whose every reply is JSON against a schema; the agent answers in words and tool calls."""

_PROBE_TOOL = ToolSpec(
    name="get_weather",
    description="The current weather in a city: temperature in degrees Celsius and a one-word sky condition.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city's name, e.g. Oslo"}},
        "required": ["city"],
    },
)
_ASK = [UserMessage(content="What is the weather in Oslo right now? Answer in one short sentence.")]
_CALL = ToolCall(id="call_probe_1", function=FunctionCall(name=_PROBE_TOOL.name, arguments='{"city": "Oslo"}'))
_TOOL_HISTORY: list[Message] = [
    *_ASK,
    AssistantMessage(content=None, tool_calls=[_CALL]),
    ToolMessage(tool_call_id=_CALL.id, name=_PROBE_TOOL.name, content='{"temperature_c": 4, "sky": "cloudy"}'),
]
_CODE = 7341
_SCHEMA = ResponseSchema(
    name="probe",
    json_schema={
        "type": "object",
        "properties": {"code": {"type": "integer", "enum": [_CODE]}},
        "required": ["code"],
        "additionalProperties": False,
    },
)
"""A reply satisfies it only when the server enforces it: the prompt does not give the code away."""
_JSON_ASK = [UserMessage(content="Reply with a JSON object and nothing else.")]


class Finding(BaseModel):
    """One check of one endpoint: ``holds`` is None when the probe could not tell."""

    model_config = ConfigDict(frozen=True)

    holds: bool | None
    detail: str
    refused: bool = Field(default=False, description="the server answered the probe with a 4xx")
    fix: str | None = Field(default=None, description="for a refusal every request would meet: what to change")


_UNKNOWN = Finding(holds=None, detail="not probed")


class EndpointReport(BaseModel):
    """What one base URL does with one model, and which roles use it."""

    base_url: str
    model: str
    roles: list[Role]
    server: str | None = Field(default=None, description="who serves it, from GET /models (owned_by)")
    findings: dict[Check, Finding] = Field(default_factory=dict)


class Problem(BaseModel):
    """Something roles need that their server does not do, and what to change."""

    roles: list[Role]
    base_url: str
    model: str
    checks: list[Check]
    findings: list[str] = Field(description="one line per check that does not hold: what the probe saw")
    fix: str


class ServerCheck(BaseModel):
    endpoints: list[EndpointReport]
    problems: list[Problem]
    notes: list[str] = Field(default_factory=list, description="what may weaken the data without stopping a run")

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_lines(self) -> list[str]:
        """Each problem: the roles, their endpoint and model, what does not hold, and the fix."""
        lines = []
        for problem in self.problems:
            lines.append(f"{', '.join(problem.roles)} at {problem.base_url} (model {problem.model!r}):")
            lines += [f"  - {finding}" for finding in problem.findings]
            lines.append(f"  fix: {problem.fix}")
        return lines


async def check_servers(
    models: ModelsConfig,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> ServerCheck:
    """Probe every distinct base URL and model of the roles (concurrently) and judge each role's needs.

    Raises ``ConfigError`` as ``ModelsConfig.resolve`` does (a role without an endpoint, an unset key variable).
    """
    resolved = {role: models.resolve(role, environ) for role in ROLES}
    targets: dict[tuple[str, ...], list[Role]] = {}
    for role, settings in resolved.items():
        for base_url in settings.base_urls:
            targets.setdefault((base_url, *_how_asked(settings)), []).append(role)
    transport = HttpTransport(RetryPolicy(backoff_base_s=0.2, backoff_max_s=1.0))
    try:
        reports = await asyncio.gather(
            *(
                _probe(_probe_model(resolved[roles[0]], key[0], transport, timeout_s), roles)
                for key, roles in targets.items()
            )
        )
    finally:
        await transport.close()
    problems = [problem for report in reports for problem in _problems(report, resolved)]
    notes = [note for report in reports if report.findings.get("reachable", _UNKNOWN).holds for note in _notes(report)]
    return ServerCheck(endpoints=list(reports), problems=problems, notes=notes)


def _how_asked(settings: ResolvedModelSettings) -> tuple[str, ...]:
    """What makes two roles' requests to one base URL differ for a server: the model, the key, the body's extras."""
    extras = orjson.dumps(settings.extra_body, option=orjson.OPT_SORT_KEYS).decode()
    return settings.model, settings.api_key_env or "", settings.max_tokens_field, extras


def _probe_model(
    settings: ResolvedModelSettings, base_url: str, transport: HttpTransport, timeout_s: float
) -> OpenAICompatible:
    """The client every role uses, on one base URL, with the probes' short timeout and a single retry."""
    probe_settings = settings.model_copy(
        update={"base_urls": (base_url,), "timeout_s": timeout_s, "max_retries": 1, "temperature": 0.0}
    )
    return OpenAICompatible(
        probe_settings, EndpointPool([base_url], 4), transport, ledger=UsageLedger(), api_key=settings.api_key()
    )


async def _probe(model: OpenAICompatible, roles: list[Role]) -> EndpointReport:
    report = EndpointReport(base_url=model.pool.base_urls[0], model=model.name, roles=roles)
    findings = report.findings
    try:
        listing = await model.list_models()
    except ModelRequestRejected as exc:
        listing = None
        findings["model_listed"] = Finding(holds=None, detail=f"GET /models refused: {exc.reason}", refused=True)
    except ModelError as exc:
        findings["reachable"] = Finding(holds=False, detail=str(exc))
        return report
    if listing is not None:
        report.server, findings["model_listed"] = _listed(listing, model.name)

    plain = await _send(model, _ASK, RequestOptions(max_tokens=PROBE_TOKENS))
    if isinstance(plain, Finding):
        findings["reachable"] = plain
        return report
    findings["reachable"] = Finding(holds=True, detail=f"{plain[0].usage.prompt_tokens} prompt tokens for a question")
    tools = (_PROBE_TOOL,)
    rendered, required, named, history, structured, repeated = await asyncio.gather(
        _send(model, _ASK, RequestOptions(tools=tools, max_tokens=PROBE_TOKENS)),
        _send(model, _ASK, RequestOptions(tools=tools, tool_choice="required", max_tokens=PROBE_TOKENS)),
        _send(model, _ASK, RequestOptions(tools=tools, tool_choice=_PROBE_TOOL.name, max_tokens=PROBE_TOKENS)),
        _send(model, _TOOL_HISTORY, RequestOptions(tools=tools, max_tokens=PROBE_TOKENS)),
        _send(model, _JSON_ASK, RequestOptions(response_format=_SCHEMA, max_tokens=PROBE_TOKENS)),
        _send(model, _ASK, RequestOptions(max_tokens=PROBE_TOKENS)),
    )
    findings["tools_rendered"] = _tools_rendered(plain[0], rendered)
    findings["tool_choice_required"] = _forced_call(required, None)
    findings["tool_choice_named"] = _forced_call(named, _PROBE_TOOL.name)
    findings["tool_messages"] = (
        history if isinstance(history, Finding) else Finding(holds=True, detail="answered after the tool result")
    )
    findings["json_schema"] = _json_schema(structured)
    replies = [
        reply for reply in (plain, rendered, required, named, history, structured) if not isinstance(reply, Finding)
    ]
    findings["reasoning"] = _reasoning([completion for completion, _ in replies])
    findings["cached_tokens"] = _cached_tokens(repeated)
    return report


async def _send(
    model: OpenAICompatible, messages: Sequence[Message], options: RequestOptions
) -> tuple[Completion, Any] | Finding:
    """One probe's reply and body, or a finding that says why there was none."""
    try:
        return await model.exchange(messages, options)
    except ModelRequestRejected as exc:
        exc.role, exc.api_key_env = model.role, model.settings.api_key_env  # for its fix, which names them
        return Finding(holds=False, detail=f"refused: HTTP {exc.status}: {exc.reason}", refused=True, fix=exc.fix)
    except ModelError as exc:
        return Finding(holds=None, detail=str(exc))


def _listed(listing: Any, name: str) -> tuple[str | None, Finding]:
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list):
        return None, Finding(holds=None, detail="GET /models sent no list of models")
    ids = [str(entry.get("id")) for entry in entries if isinstance(entry, dict)]
    owners = {str(entry["owned_by"]) for entry in entries if isinstance(entry, dict) and entry.get("owned_by")}
    server = ", ".join(sorted(owners)) or None
    if name in ids or f"{name}:latest" in ids:
        return server, Finding(holds=True, detail=f"{len(ids)} model(s) listed")
    shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
    return server, Finding(holds=False, detail=f"lists {shown or 'nothing'} (some servers answer any name)")


def _tools_rendered(plain: Completion, reply: tuple[Completion, Any] | Finding) -> Finding:
    if isinstance(reply, Finding):
        return reply
    without, with_tools = plain.usage.prompt_tokens, reply[0].usage.prompt_tokens
    if not without or not with_tools:
        return Finding(holds=None, detail="the server reports no prompt_tokens to compare")
    if with_tools > without:
        return Finding(holds=True, detail=f"prompt: {without} tokens, {with_tools} with one tool")
    return Finding(
        holds=False, detail=f"prompt: {without} tokens with and without a tool: the template drops the tools"
    )


def _forced_call(reply: tuple[Completion, Any] | Finding, name: str | None) -> Finding:
    if isinstance(reply, Finding):
        return reply
    completion = reply[0]
    calls = [call.name for call in completion.tool_calls]
    if not calls and completion.finish_reason == "length":  # a thinking model may spend the probe's tokens first
        return Finding(holds=None, detail=f"the reply was cut at {PROBE_TOKENS} tokens before any call")
    if not calls:
        return Finding(holds=False, detail=f"replied in text: {_excerpt(completion.content)}")
    if name is not None and name not in calls:
        return Finding(holds=False, detail=f"called {', '.join(calls)} instead of {name}")
    return Finding(holds=True, detail=f"called {', '.join(calls)}")


def _json_schema(reply: tuple[Completion, Any] | Finding) -> Finding:
    if isinstance(reply, Finding):
        return reply
    completion = reply[0]
    try:
        value = orjson.loads((completion.content or "").strip())
    except orjson.JSONDecodeError:
        value = None
    if value is not None and not schema_violations(value, _SCHEMA.json_schema):
        return Finding(holds=True, detail="the reply satisfied a schema the prompt did not spell out")
    if completion.finish_reason == "length" and value is None:
        return Finding(holds=None, detail=f"the reply was cut at {PROBE_TOKENS} tokens: {_excerpt(completion.content)}")
    return Finding(
        holds=False, detail=f"ignored: the reply does not satisfy the schema: {_excerpt(completion.content)}"
    )


def _reasoning(completions: list[Completion]) -> Finding:
    if any(completion.reasoning for completion in completions):
        return Finding(holds=True, detail="reasoning came apart from the answer")
    return Finding(holds=False, detail="none in the probes' replies (not needed)")


def _cached_tokens(reply: tuple[Completion, Any] | Finding) -> Finding:
    if isinstance(reply, Finding):
        return reply
    completion, body = reply
    usage = body.get("usage") if isinstance(body, dict) else None
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if not isinstance(cached, int):
        return Finding(holds=False, detail="usage has no prompt_tokens_details.cached_tokens (not needed)")
    return Finding(holds=True, detail=f"{cached} of {completion.usage.prompt_tokens} tokens of a repeated prompt")


def _excerpt(text: str | None) -> str:
    text = " ".join((text or "").split())
    return repr(text[:60] + ("..." if len(text) > 60 else "")) if text else "(empty)"


def _problems(report: EndpointReport, resolved: Mapping[Role, ResolvedModelSettings]) -> list[Problem]:
    """What each role of this endpoint needs and does not get; roles with the same problem share one entry."""
    findings = report.findings

    def problem(roles: Sequence[Role], checks: Sequence[Check], fix: str) -> Problem:
        return Problem(
            roles=list(roles),
            base_url=report.base_url,
            model=report.model,
            checks=list(checks),
            findings=[f"{CHECK_LABELS[check]}: no ({findings[check].detail})" for check in checks],
            fix=fix,
        )

    reachable = findings.get("reachable")
    if reachable is None or not reachable.holds:
        return [problem(report.roles, ["reachable"], _unreachable_fix(reachable, report))]
    problems = []
    if "agent" in report.roles and (missing := _missing_for_the_agent(findings)):
        problems.append(problem(["agent"], missing, _tool_fix(report.server)))
    json_roles = [role for role in report.roles if role in STRUCTURED_ROLES and _needs_native_json(resolved[role])]
    structured = findings["json_schema"]
    if json_roles and structured.holds is False:
        native = [role for role in json_roles if resolved[role].structured_output == "native"]
        if native or not structured.refused:  # "auto" falls back to the prompt by itself on a refusal
            settings = " and ".join(f"models.{role}.structured_output" for role in (native or json_roles))
            problems.append(
                problem(
                    native or json_roles,
                    ["json_schema"],
                    f"set {settings}: prompt (dialforge then asks for the JSON in the prompt and checks the reply), "
                    "or serve the model with structured outputs on (llama.cpp, vLLM, SGLang and Ollama have them)",
                )
            )
    return problems


def _missing_for_the_agent(findings: Mapping[Check, Finding]) -> list[Check]:
    """What the agent needs and its server does not do: the tools in its prompt and its tool results in the
    history. A forced tool choice is not among them: the agent asks with "auto", and llama.cpp with a template
    that renders tools may still answer a forced choice in text (a note, not a refusal)."""
    return [check for check in ("tools_rendered", "tool_messages") if findings[check].holds is False]


def _notes(report: EndpointReport) -> list[str]:
    """What holds back the data without making a role impossible: a tool choice the server does not enforce."""
    findings = report.findings
    forced = [findings[check].holds for check in ("tool_choice_required", "tool_choice_named") if check in findings]
    if "agent" not in report.roles or findings["tools_rendered"].holds is not True or True in forced or not forced:
        return []
    return [
        f"agent at {report.base_url} (model {report.model!r}): the tools are rendered, but a forced tool_choice came "
        'back as text, so the server does not enforce it; the agent asks with "auto", and whether it calls tools '
        "depends on the model alone"
    ]


def _needs_native_json(settings: ResolvedModelSettings) -> bool:
    return settings.structured_output != "prompt"


def _unreachable_fix(finding: Finding | None, report: EndpointReport) -> str:
    settings = f"models.{report.roles[0]}"
    if finding is not None and finding.fix:
        return finding.fix
    if finding is not None and finding.refused:
        return (
            f"the server refuses a plain question (its words are above): check what {settings} adds to every "
            "request (its sampling options, max_tokens_field, extra_body)"
        )
    return f"start the server, or correct the base URL ({settings}.base_urls: {report.base_url}, usually ending in /v1)"


_TOOL_FIXES = {
    "llamacpp": "start llama-server with --jinja and a chat template that supports tools (the model's own, or "
    "--chat-template-file with one that renders tools, tool calls and tool results)",
    "vllm": "start vLLM with --enable-auto-tool-choice --tool-call-parser PARSER (the parser for the model's "
    "family, e.g. hermes), and --chat-template with tool support if the model's own has none",
    "sglang": "start SGLang with --tool-call-parser PARSER (the parser for the model's family)",
    "ollama": "use a model with tool support (ollama show MODEL lists tools among its capabilities)",
}
_OLLAMA_OWNERS = ("library", "ollama")


def _tool_fix(server: str | None) -> str:
    """The way to turn tool calling on, for the server that answered (all of them when it is not known)."""
    owner = (server or "").lower()
    for key in ("llamacpp", "vllm", "sglang"):
        if key in owner:
            return _TOOL_FIXES[key]
    if any(name in owner for name in _OLLAMA_OWNERS):
        return _TOOL_FIXES["ollama"]
    return "serve the model with tool calling on: " + "; ".join(
        f"{name}: {fix}"
        for name, fix in zip(("llama.cpp", "vLLM", "SGLang", "Ollama"), _TOOL_FIXES.values(), strict=True)
    )
