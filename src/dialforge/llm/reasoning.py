"""Separate a model's thinking from its answer when it arrives inline as ``<think>`` blocks."""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_CLOSE = "</think>"


def split_reasoning(content: str | None) -> tuple[str | None, str | None]:
    """Return ``(answer, reasoning)``.

    Handles complete ``<think>...</think>`` blocks anywhere in the text and the Qwen3/DeepSeek-R1
    case where the opening tag was part of the prompt, so the content starts mid-thought and
    only the closing tag appears. An unclosed ``<think>`` (truncated reply) is all reasoning.
    """
    if not content or "think>" not in content:
        return content, None
    thoughts = [m.strip() for m in _THINK.findall(content)]
    rest = _THINK.sub("", content)
    if _CLOSE in rest:
        head, _, rest = rest.partition(_CLOSE)
        thoughts.insert(0, head.strip())
    if "<think>" in rest:
        rest, _, tail = rest.partition("<think>")
        thoughts.append(tail.strip())
    reasoning = "\n\n".join(t for t in thoughts if t) or None
    return rest.strip() or None, reasoning
