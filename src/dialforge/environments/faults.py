"""Transient service faults injected into tool calls (``DialogueConfig.tool_faults``).

Real services time out, go down for a moment and throttle their clients. Injected into a share of the calls,
such faults let a dataset teach recovery: try again, or tell the person. A faulted call never reaches the
environment, so it changes nothing, and its error says so, as a well-behaved API does.

Whether a call faults, and how, is a pure function of the dialogue's seed, its id and the call's index in it:
a resumed dialogue, in whichever process, meets exactly the faults it met before. The engine asks for every
call whatever environment the dialogue has (real SQL, Python functions or a model playing the tools).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from dialforge.environments.base import ToolResult
from dialforge.model.dialogue import ToolFaultKind

TIMEOUT_SECONDS = 30
RETRY_AFTER_SECONDS = 2

_MESSAGES: dict[ToolFaultKind, str] = {
    "timeout": f"the service did not answer within {TIMEOUT_SECONDS} seconds",
    "unavailable": "the service is temporarily unavailable",
    "rate_limited": "too many requests in a short time",
}


def injected_fault(
    rate: float, kinds: Sequence[ToolFaultKind], *, seed: int, dialogue_id: str, call_index: int
) -> ToolFaultKind | None:
    """The fault the ``call_index``-th tool call of a dialogue meets, or None for most: each call faults with
    probability ``rate``, with one of ``kinds`` chosen evenly."""
    if rate <= 0 or not kinds:
        return None
    digest = hashlib.blake2b(f"{seed}\0{dialogue_id}\0{call_index}".encode(), digest_size=16).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw >= rate:
        return None
    return kinds[int.from_bytes(digest[8:], "big") % len(kinds)]


def fault_result(kind: ToolFaultKind, tool: str) -> ToolResult:
    """The error the agent reads instead of the tool's result: what failed, that nothing was done, and that the
    same call may be tried again."""
    message = f"{tool}: {_MESSAGES[kind]}; the request was not carried out and may be tried again"
    if kind == "rate_limited":
        return ToolResult.failure(
            kind, f"{message} in {RETRY_AFTER_SECONDS} seconds", retry_after_seconds=RETRY_AFTER_SECONDS
        )
    return ToolResult.failure(kind, message)
