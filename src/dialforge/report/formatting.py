"""How the report writes a figure, so the terminal, the HTML tables and the plots show the same text."""

from __future__ import annotations

MISSING = "-"
"""What stands for a figure that has no value, e.g. a pass rate when nothing was judged."""


def number(value: float | None, digits: int = 2) -> str:
    """Whole numbers without decimals, others rounded to ``digits``."""
    if value is None:
        return MISSING
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """A ratio in 0..1 as a percentage with one decimal."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def seconds(value: float) -> str:
    """Seconds to the tenth of a millisecond: model calls against a local server take a few milliseconds."""
    return f"{value:.4f}"


def usd(value: float | None) -> str:
    """US dollars to a hundredth of a cent: a short run against a cheap model costs fractions of a cent."""
    return MISSING if value is None else f"{value:.4f}"
