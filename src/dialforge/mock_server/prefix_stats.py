"""How much of each prompt repeats the previous prompt of the same conversation.

Servers with prefix caching (vLLM, SGLang) only save work when a conversation's next request
starts with the previous one byte for byte; a client that rewrites history (edits the system
prompt, reorders tools, changes a past message) silently loses that. This measures it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


def conversation_key(raw_messages: Sequence[dict[str, Any]]) -> str:
    """A stable id for a conversation without a header: a hash of its first two messages' role and content."""
    head = [(m.get("role"), m.get("content")) for m in raw_messages[:2]]
    return hashlib.blake2b(orjson.dumps(head), digest_size=8).hexdigest()


def common_prefix_length(old: Sequence[bytes], new: Sequence[bytes]) -> int:
    """Length of the common prefix of two prompts given as pieces (the concatenation is what counts).

    Pieces are whole JSON values, so none is a proper prefix of another: once two pieces differ the
    common prefix ends inside them, and a binary search over slices finds where in C-speed compares.
    """
    total = 0
    for a, b in zip(old, new, strict=False):
        if a == b:
            total += len(a)
            continue
        low, high = 0, min(len(a), len(b))
        while low < high:
            middle = (low + high + 1) // 2
            if a[:middle] == b[:middle]:
                low = middle
            else:
                high = middle - 1
        return total + low
    return total


@dataclass(slots=True)
class _Conversation:
    last_prompt: tuple[bytes, ...]
    last_chars: int
    requests: int = 1
    ratio_sum: float = 0.0
    last_ratio: float | None = None
    append_only: int = 0


class PrefixReuse:
    """Per-conversation prefix reuse with bounded memory: only the last prompt of each conversation is
    kept, and the least recently seen conversations are forgotten beyond ``max_conversations`` or
    ``max_bytes`` of stored prompts. Overall totals survive forgetting."""

    def __init__(self, *, max_conversations: int = 100_000, max_bytes: int = 512 << 20, max_rows: int = 100):
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._max_rows = max_rows
        self.reset()

    def reset(self) -> None:
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._stored_bytes = 0
        self._seen = 0
        self._compared = 0
        self._ratio_sum = 0.0
        self._common_chars = 0
        self._prompt_chars = 0
        self._append_only = 0

    def record(self, conversation: str, prompt: tuple[bytes, ...], chars: int) -> None:
        """Compare ``prompt`` (of total length ``chars``) with the conversation's previous one, then keep it."""
        entry = self._conversations.get(conversation)
        if entry is None:
            self._seen += 1
            self._conversations[conversation] = _Conversation(prompt, chars)
            self._stored_bytes += chars
        else:
            common = common_prefix_length(entry.last_prompt, prompt)
            ratio = common / chars if chars else 1.0
            # The whole previous prompt reappears unchanged: a prefix cache reuses all of it.
            appended = common == entry.last_chars
            self._append_only += appended
            entry.append_only += appended
            self._compared += 1
            self._ratio_sum += ratio
            self._common_chars += common
            self._prompt_chars += chars
            self._stored_bytes += chars - entry.last_chars
            entry.last_prompt, entry.last_chars = prompt, chars
            entry.requests += 1
            entry.ratio_sum += ratio
            entry.last_ratio = ratio
            self._conversations.move_to_end(conversation)
        self._forget_beyond_limits()

    def _forget_beyond_limits(self) -> None:
        while len(self._conversations) > 1 and (
            len(self._conversations) > self._max_conversations or self._stored_bytes > self._max_bytes
        ):
            _, oldest = self._conversations.popitem(last=False)
            self._stored_bytes -= oldest.last_chars

    def snapshot(self) -> dict[str, Any]:
        """Overall ratios and the most recently active conversations (at most ``max_rows`` of them)."""
        recent = list(itertools.islice(reversed(self._conversations.items()), self._max_rows))
        return {
            "conversations": self._seen,
            "requests_compared": self._compared,
            "mean_ratio": self._ratio_sum / self._compared if self._compared else None,
            "chars_weighted_ratio": self._common_chars / self._prompt_chars if self._prompt_chars else None,
            "append_only_requests": self._append_only,
            "conversations_tracked": len(self._conversations),
            "rows_omitted": len(self._conversations) - len(recent),
            "rows": [
                {
                    "conversation": key,
                    "requests": entry.requests,
                    "mean_ratio": entry.ratio_sum / (entry.requests - 1) if entry.requests > 1 else None,
                    "last_ratio": entry.last_ratio,
                    "append_only_requests": entry.append_only,
                    "prompt_chars": entry.last_chars,
                }
                for key, entry in recent
            ],
        }
