"""The dialogue engine: one dialogue is a state machine, and ``step`` takes exactly one action.

An action is one model call (user simulator, agent, judge) or one tool execution. ``step`` returns a
new state and leaves its argument untouched, so the runner can persist every state; a state read
back from storage continues identically because the environment's snapshot travels inside it and the
domain's environment factory rebuilds the environment from it (``environments/base.py``); the engine never
asks which kind of environment it holds.

The three pipelines of arXiv 2601.08225 (docs/method.md) are a choice of actors, not copies of this loop:
``task`` (the agent gets each task as a direct request; simulated tools, or the domain's real ones when it
has a database or Python tools, with the tasks' checks run), ``user`` (user simulator;
simulated tools) and ``user+exec`` (user simulator; real SQL or Python tools).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from dialforge import __version__
from dialforge.actors.agent import Agent, agent_system_prompt
from dialforge.actors.judge import Judge
from dialforge.actors.personas import DEFAULT_PERSONAS, DEFAULT_PERSONAS_PROMPT, Persona, pick_persona
from dialforge.actors.user_simulator import UserSimulator
from dialforge.config import DialogueConfig
from dialforge.environments.base import (
    Environment,
    EnvironmentFactory,
    ExecutedCall,
    RestoreError,
    ToolResult,
    Verification,
)
from dialforge.environments.combined import CombinedEnvironments
from dialforge.environments.faults import fault_result, injected_fault
from dialforge.environments.simulated import SimulatedEnvironments, random_reference_time
from dialforge.llm.completion import Role
from dialforge.llm.errors import ModelError
from dialforge.llm.protocol import ChatModel
from dialforge.llm.usage_scope import ScopedUsage, usage_scope
from dialforge.model.conversation import conversation_problems
from dialforge.model.dialogue import Actor, Dialogue, DialogueState, Mode, ToolFault
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec, with_brought_tools
from dialforge.pipeline.dialogue_stats import dialogue_stats, message_turns
from dialforge.prompts import prompt_digests


class EngineError(Exception):
    """The engine was set up wrongly (not a model's fault): e.g. real execution without an environment."""


@dataclass
class DomainSetup:
    """What the engine needs per domain: tools, policy, and for real execution the environments its tools run in."""

    name: str
    tools: list[ToolSpec]
    policy: str = ""
    environments: EnvironmentFactory | None = None
    description: str = ""
    """what the business is, for the agent and the tool simulator"""


class DialogueEngine:
    def __init__(
        self,
        models: Mapping[Role, ChatModel],
        *,
        mode: Mode,
        settings: DialogueConfig | None = None,
        personas: Sequence[Persona] | None = None,
    ) -> None:
        scoped = {role: ScopedUsage(model, role) for role, model in models.items()}
        self.mode = mode
        self.settings = settings or DialogueConfig()
        self.personas = tuple(DEFAULT_PERSONAS if personas is None else personas)
        self.user = UserSimulator(scoped["user"]) if mode != "task" else None
        self.agent = Agent(scoped["agent"])
        self.judge = Judge(scoped["judge"])
        self.tool_model: ChatModel = scoped["tool"]
        self._prompts = [*Agent.prompts, *Judge.prompts]
        if mode != "task":
            self._prompts += [*UserSimulator.prompts, *((DEFAULT_PERSONAS_PROMPT,) if personas is None else ())]
        self._model_names = {role: model.name for role, model in models.items()}
        self._generators: dict[str, dict[str, object]] = {}
        """per domain: how its dialogues are made (the code's version, the model per role and a digest of each
        prompt its roles and its environments are given), so that datasets can be compared and a dialogue traced
        to its code"""
        self._domains: dict[str, DomainSetup] = {}
        self._environments: dict[str, EnvironmentFactory] = {}
        """per domain: where its dialogues' tools run (its real environments, or a model playing them)"""
        self._combined: dict[tuple[str, bytes], EnvironmentFactory] = {}
        """per domain and set of tools a continued conversation brought: the domain's environments with them"""
        self._live: dict[str, tuple[int, Environment]] = {}
        """dialogue id -> (message count of the state it belongs to, live environment)"""

    def generator(self, state: DialogueState) -> dict[str, object]:
        """The record's ``generator``: an environment's prompts count only where a model played the tools."""
        made = self._generators[state.domain]
        factory = self._factory(state)
        if factory is self._environments[state.domain]:
            return made
        return {**made, "prompts": prompt_digests([*self._prompts, *factory.prompts])}

    def add_domain(self, setup: DomainSetup) -> None:
        if self.mode == "user+exec" and setup.environments is None:
            raise EngineError(
                f"domain {setup.name!r}: mode user+exec executes tools for real, so it needs a database "
                "(domains[].database) or a Python environment; use mode 'user' for simulated tools"
            )
        self._domains[setup.name] = setup
        environments = self._environments[setup.name] = (
            setup.environments
            if setup.environments is not None and self.mode != "user"
            else SimulatedEnvironments(self.tool_model, setup.tools, domain=setup.name, description=setup.description)
        )
        self._generators[setup.name] = {
            "dialforge_version": __version__,
            "models": self._model_names,
            "prompts": prompt_digests([*self._prompts, *environments.prompts]),
        }

    # -- starting ---------------------------------------------------------------------------------------------

    def start(
        self,
        domain: str,
        tasks: Sequence[Task],
        *,
        dialogue_id: str,
        seed: int,
        messages: Sequence[Message] = (),
        instructions: str | None = None,
        tools: Sequence[ToolSpec] = (),
        failure: str | None = None,
    ) -> DialogueState:
        """A new dialogue about ``tasks``, or one continuing ``messages``, an existing conversation, kept as it is:
        ``instructions`` are its system prompt (kept in the agent's), ``tools`` those it declares or calls (the
        domain's tool of the same name is the one kept; the others a model plays). With a ``failure``, the
        dialogue is recorded as failed for that reason, without a step."""
        setup = self._domains[domain]
        fixed = self.settings.today
        today = fixed.isoformat(timespec="seconds") if fixed is not None else random_reference_time(seed)
        system = SystemMessage(
            content=agent_system_prompt(
                domain,
                setup.policy,
                description=setup.description,
                today=today,
                direct_requests=self.mode == "task",
                instructions=instructions,
            )
        )
        every_tool = with_brought_tools(setup.tools, tools)
        history = [m for m in messages if not isinstance(m, SystemMessage)]
        problems = conversation_problems(history, [tool.name for tool in every_tool], allow_pending=True)
        spoken = any(isinstance(message, UserMessage) for message in history)  # the person has a voice already
        persona = pick_persona(self.personas, seed) if self.mode != "task" and not spoken else None
        state = DialogueState(
            id=dialogue_id,
            mode=self.mode,
            domain=domain,
            tools=every_tool,
            policy=setup.policy,
            tasks=list(tasks),
            messages=[system, *history],
            next_actor=_next_after(history),
            history_length=len(history),
            goal_started_at=1 + _open_request(history),
            seed=seed,
            persona=persona.name if persona else None,
            today=today,
        )
        if failure is None and problems:
            failure = f"the conversation to continue is not usable: {problems[0]}"
        elif failure is None and not tasks:
            failure = "no task to pursue: every task written for this dialogue failed its checks"
        if failure is not None:
            state.status, state.next_actor, state.failure = "failed", "done", failure
            state.stats = dialogue_stats(state)
            return state
        environment = self._factory(state).new(seed=seed, clock=today)
        self._live[state.id] = (len(state.messages), environment)
        state.env = environment.snapshot()
        state.stats = dialogue_stats(state)
        return state

    # -- stepping ---------------------------------------------------------------------------------------------

    async def run(self, state: DialogueState) -> DialogueState:
        while state.next_actor != "done":
            state = await self.step(state)
        return state

    async def step(self, state: DialogueState) -> DialogueState:
        """Take the next action. Model or tool trouble stops the dialogue (see ``_stop``), except a refusal that
        every request would meet (``ModelError.blocks_every_request``: a wrong key, an unknown model, a request
        format the server does not take): that propagates, with the caller's state untouched, so the run stops
        and this step is taken again when it resumes."""
        # A new state; the caller's stays untouched. Only these containers are changed in place by a step
        # (everything else is replaced whole), so copying them is enough and much cheaper than a deep copy.
        state = state.model_copy(
            update={"messages": list(state.messages), "guards": dict(state.guards), "usage": dict(state.usage)}
        )
        actor, completed = state.next_actor, state.tasks_done
        with usage_scope(state.usage):
            try:
                if actor == "user":
                    await self._user_step(state)
                elif actor == "agent":
                    await self._agent_step(state)
                elif actor == "tool":
                    await self._tool_step(state)
                elif actor == "judge":
                    await self._judge_step(state)
            except ModelError as exc:
                if exc.blocks_every_request:
                    raise
                self._guard(state, f"{actor}_{exc.kind}")
                self._stop(state, f"{actor}: {exc.kind}: {exc}")
            except EngineError as exc:
                self._stop(state, str(exc))
        if state.tasks_done > completed and state.current_task is not None:
            # The goal's transcript ends with the agent's answer the person accepted; the environment is as
            # that answer left it. A truncation comes back to exactly here.
            replies = (i for i, m in enumerate(state.messages) if isinstance(m, AssistantMessage))
            state.goal_end = 1 + max(replies, default=len(state.messages) - 1)
            state.goal_end_env = state.env
        budget = self.settings.turn_budget(len(state.tasks))
        added = sum(message_turns(m) for m in state.conversation[state.history_length :])
        if state.next_actor not in ("judge", "done") and added >= budget:
            self._guard(state, "max_turns")
            self._stop(state, f"the dialogue reached {budget} turns without finishing its tasks")
        if (live := self._live.get(state.id)) is not None and actor != "tool" and state.next_actor != "done":
            self._live[state.id] = (len(state.messages), live[1])  # only the tool step changes the environment
        state.stats = dialogue_stats(state)
        return state

    def _stop(self, state: DialogueState, reason: str) -> None:
        """The dialogue cannot go on: with a goal completed and another open, it is cut back to the end of its
        last completed goal and judged on the completed ones; otherwise it fails."""
        if state.goal_end is None or state.goal_end_env is None or state.current_task is None:
            self._fail(state, reason)
            return
        state.truncated, state.failure = True, reason
        state.tasks, state.tasks_dropped = state.tasks[: state.tasks_done], state.tasks[state.tasks_done :]
        state.messages = state.messages[: state.goal_end]
        state.faults = _faults_in(state.messages, state.faults)
        state.env = state.goal_end_env  # later goals' changes are gone with their messages, so checks see the cut
        state.goal_end = state.goal_end_env = state.closing_message = None
        state.next_actor = "judge"
        self._release(state)  # the live environment went on past the cut; the judge's is rebuilt from env

    def _fail(self, state: DialogueState, reason: str) -> None:
        state.status, state.failure, state.next_actor = "failed", reason, "done"
        self._release(state)

    def _release(self, state: DialogueState) -> None:
        live = self._live.pop(state.id, None)
        if live is not None:
            live[1].close()

    def _guard(self, state: DialogueState, name: str) -> None:
        state.guards[name] = state.guards.get(name, 0) + 1

    async def _user_step(self, state: DialogueState) -> None:
        task = state.current_task
        assert task is not None, "the user only speaks while a task is open"
        if self.user is None:  # task-oriented baseline: each task is a direct request
            state.messages.append(UserMessage(content=task.description))
            state.next_actor = "agent"
            return
        persona = next((p for p in self.personas if p.name == state.persona), None)
        turn = await self.user.next_turn(state, persona, service=self._domains[state.domain].description)
        if turn.is_task_complete and not _goal_answered(state):
            # Nothing of this goal was asked and answered yet: a completion now would leave it undone.
            self._guard(state, "premature_completion")
            turn = turn.model_copy(update={"is_task_complete": False})
        if not turn.is_task_complete:
            state.messages.append(UserMessage(content=turn.user_message))
            state.next_actor = "agent"
            self._stop_repetition(state, "user")
            return
        state.tasks_done += 1
        if state.current_task is None:
            state.closing_message = turn.user_message
            state.next_actor = "judge"
        else:
            if task.checks and not await self._holds(state, task):
                state.goals_unconfirmed = [*state.goals_unconfirmed, state.tasks_done - 1]
            # No farewell between goals: the person's next message, asked for right away, thanks the agent and
            # opens the next goal in one go, as people do ("Great, thanks. While I have you, ..."); this
            # acknowledgement, said to nobody, is left out.
            state.goal_started_at = len(state.messages)
            state.next_actor = "user"

    def _steps_since_user(self, state: DialogueState) -> int:
        steps = 0
        for message in reversed(state.messages):
            if isinstance(message, UserMessage):
                break
            if isinstance(message, AssistantMessage) and message.tool_calls:
                steps += 1
        return steps

    async def _agent_step(self, state: DialogueState) -> None:
        allow_tools = self._steps_since_user(state) < self.settings.max_steps_per_turn
        if not allow_tools:
            self._guard(state, "max_steps_per_turn")
        completion = await self.agent.respond(state, allow_tools=allow_tools)
        state.messages.append(completion.to_message())
        if completion.tool_calls:
            if repeated := self._repeated_call(state, completion.tool_calls):
                self._guard(state, "repeated_tool_call")
                self._stop(
                    state, f"the agent repeated the call {repeated} more than {self.settings.max_repeated_calls} times"
                )
                return
            state.next_actor = "tool"
        elif self._stop_repetition(state, "agent"):
            return
        elif self.user is None:  # a direct request is answered: the task is done
            state.tasks_done += 1
            state.next_actor = "user" if state.current_task is not None else "judge"
        else:
            state.next_actor = "user"

    def _stop_repetition(self, state: DialogueState, party: str) -> bool:
        """Stop the dialogue (guard ``repeated_message``) when ``party`` has just said the same text more than
        ``max_repeated_messages`` times in a row: a model caught in a loop, which later turns only prolong."""
        role = "user" if party == "user" else "assistant"
        said = [
            " ".join((m.content or "").split())
            for m in state.conversation[state.history_length :]
            if m.role == role and not (isinstance(m, AssistantMessage) and m.tool_calls)
        ]
        allowed = self.settings.max_repeated_messages
        last = said[-(allowed + 1) :]
        if len(last) <= allowed or len(set(last)) > 1:
            return False
        self._guard(state, "repeated_message")
        self._stop(state, f"the {party} repeated the message {last[0][:80]!r} more than {allowed} times in a row")
        return True

    def _repeated_call(self, state: DialogueState, calls: Sequence[ToolCall]) -> str | None:
        def signature(call: ToolCall) -> str:
            try:
                arguments = orjson.dumps(call.parsed_arguments(), option=orjson.OPT_SORT_KEYS).decode()
            except ValueError:
                arguments = call.function.arguments
            return f"{call.name}({arguments})"

        faulted = {fault.call_id for fault in state.faults}  # trying again after a fault is no repetition
        seen: dict[str, int] = {}
        for message in state.messages:  # within one user request: reading a record again later is normal
            if isinstance(message, UserMessage):
                seen.clear()
            elif isinstance(message, AssistantMessage):
                for done in message.tool_calls or ():
                    if done.id in faulted:
                        continue
                    key = signature(done)
                    seen[key] = seen.get(key, 0) + 1
        return next((key for c in calls if seen[key := signature(c)] > self.settings.max_repeated_calls), None)

    async def _tool_step(self, state: DialogueState) -> None:
        last = next(m for m in reversed(state.messages) if isinstance(m, AssistantMessage))
        answered = {m.tool_call_id for m in state.messages if isinstance(m, ToolMessage)}
        pending = [call for call in last.tool_calls or () if call.id not in answered]
        call = pending[0]
        environment = await self._environment(state)
        fault = injected_fault(
            self.settings.tool_faults,
            self.settings.tool_fault_kinds,
            seed=state.seed,
            dialogue_id=state.id,
            call_index=sum(isinstance(m, ToolMessage) for m in state.messages),
        )
        if fault is not None:  # the service failed before the call reached it: nothing ran, nothing changed
            result = fault_result(fault, call.name)
            state.faults = [*state.faults, ToolFault(call_id=call.id, tool=call.name, kind=fault)]
        else:
            try:
                arguments = call.parsed_arguments()
            except ValueError as exc:
                result = ToolResult.failure("invalid_arguments", str(exc))
            else:
                result = await environment.call(call.name, arguments, conversation=state.conversation)
        state.messages.append(ToolMessage(tool_call_id=call.id, name=call.name, content=result.to_text()))
        state.env = environment.snapshot()
        self._live[state.id] = (len(state.messages), environment)
        state.next_actor = "tool" if len(pending) > 1 else "agent"

    async def _judge_step(self, state: DialogueState) -> None:
        verification = await self._verification(state)
        state.judgment = await self.judge.judge(state, verification=verification)
        state.status, state.next_actor = "completed", "done"
        self._release(state)

    async def _holds(self, state: DialogueState, task: Task) -> bool:
        """Whether ``task``'s checks hold on the environment now (true where nothing real can be checked)."""
        verification = (await self._environment(state)).verify(task.checks)
        return verification is None or verification.passed

    async def _verification(self, state: DialogueState) -> Verification | None:
        final = await self._environment(state)
        return final.verify([check for task in state.tasks for check in task.checks])

    # -- environments across crashes ----------------------------------------------------------------------------

    async def _environment(self, state: DialogueState) -> Environment:
        """The dialogue's live environment, rebuilt from the state when this process has not got it."""
        live = self._live.get(state.id)
        if live is not None and live[0] == len(state.messages):
            return live[1]  # the environment as this very state left it; anything else is rebuilt
        try:
            environment = await self._factory(state).restore(state.env, seed=state.seed, calls=_executed_calls(state))
        except RestoreError as exc:
            raise EngineError(f"dialogue {state.id!r} ({state.domain}): {exc}") from None
        self._live[state.id] = (len(state.messages), environment)
        return environment

    def _factory(self, state: DialogueState) -> EnvironmentFactory:
        """Where the dialogue's tools run: its domain's environments, combined with a model playing the tools a
        continued conversation brought along (one such factory per set of brought tools)."""
        domain = self._environments[state.domain]
        own = {tool.name for tool in domain.tools()}
        brought = [tool for tool in state.tools if tool.name not in own]
        if not brought:
            return domain
        key = (state.domain, orjson.dumps([tool.to_openai() for tool in brought]))
        if key not in self._combined:
            setup = self._domains[state.domain]
            self._combined[key] = CombinedEnvironments(
                domain,
                SimulatedEnvironments(self.tool_model, brought, domain=setup.name, description=setup.description),
            )
        return self._combined[key]

    async def close(self) -> None:
        """The run is over: every domain's environments end what is still running (servers of dialogues an
        interruption cut short); the states stored so far are untouched."""
        self._live.clear()
        for environments in self._environments.values():
            await environments.close()

    # -- the record -----------------------------------------------------------------------------------------------

    def record(self, state: DialogueState) -> Dialogue:
        """The canonical record; a failed dialogue keeps its transcript up to its last complete exchange."""
        messages = _complete_exchanges(state.messages)
        return Dialogue(
            id=state.id,
            mode=state.mode,
            domain=state.domain,
            status=state.status,
            failure=state.failure,
            truncated=state.truncated,
            tools=[tool.to_openai() for tool in state.tools],
            messages=messages,
            tasks=state.tasks,
            tasks_dropped=state.tasks_dropped,
            judgment=state.judgment,
            stats=dialogue_stats(state, messages),  # what the record holds, not what the state reached
            usage=state.usage,
            env={k: v for k, v in state.env.items() if k != "pages"},
            faults=_faults_in(messages, state.faults),
            seed=state.seed,
            persona=state.persona,
            guards=state.guards,
            generator=self.generator(state),
            prefix_messages=min(state.history_length, sum(m.role != "system" for m in messages)),
        )


def _executed_calls(state: DialogueState) -> list[ExecutedCall]:
    """The dialogue's tool calls that reached its environment, in order: answered in this dialogue (a continued
    conversation's own results came from elsewhere), and not stopped by a fault."""
    started = 1 + state.history_length  # after the system prompt and the continued conversation
    answered = {m.tool_call_id for m in state.messages[started:] if isinstance(m, ToolMessage)}
    faulted = {fault.call_id for fault in state.faults}
    calls = []
    for message in state.messages:
        for call in message.tool_calls or () if isinstance(message, AssistantMessage) else ():
            if call.id in answered and call.id not in faulted:
                try:
                    calls.append((call.name, call.parsed_arguments()))
                except ValueError:
                    continue  # arguments that were not JSON never reached the environment
    return calls


def _faults_in(messages: Sequence[Message], faults: Sequence[ToolFault]) -> list[ToolFault]:
    """The faults whose call is still in ``messages`` (a truncation or an unfinished exchange drops calls)."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [fault for fault in faults if fault.call_id in answered]


def _goal_answered(state: DialogueState) -> bool:
    """Whether a request of the current goal was made and the agent answered it."""
    asked = False
    for message in state.messages[state.goal_started_at :]:
        if isinstance(message, UserMessage):
            asked = True
        elif asked and isinstance(message, AssistantMessage):
            return True
    return False


def _next_after(history: Sequence[Message]) -> Actor:
    """Who speaks next after an imported conversation: it may end mid-exchange."""
    if not history:
        return "user"
    last = history[-1]
    if isinstance(last, UserMessage) or (isinstance(last, ToolMessage) and not _pending_calls(history)):
        return "agent"
    return "tool" if _pending_calls(history) else "user"


def _open_request(history: Sequence[Message]) -> int:
    """Where the first goal's part of a continued conversation begins: its last user message, when the agent has
    yet to answer it (the goal takes that request up), else its end."""
    if _next_after(history) == "user":
        return len(history)
    return max((i for i, message in enumerate(history) if isinstance(message, UserMessage)), default=len(history))


def _pending_calls(history: Sequence[Message]) -> bool:
    return len(_complete_exchanges(history)) < len(history)


def _complete_exchanges(messages: Sequence[Message]) -> list[Message]:
    """The messages up to the last complete exchange: a final assistant message whose calls are not all
    answered (a dialogue stopped mid-step) is left out, with the answers it did get."""
    index = next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], AssistantMessage)), None)
    if index is None:
        return list(messages)
    last = messages[index]
    assert isinstance(last, AssistantMessage)
    answered = {m.tool_call_id for m in messages[index:] if isinstance(m, ToolMessage)}
    if any(call.id not in answered for call in last.tool_calls or ()):
        return list(messages[:index])
    return list(messages)
