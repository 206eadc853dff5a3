"""The statistics as plain text tables (no colour, no box drawing), for a terminal or a log."""

from __future__ import annotations

from dialforge.report.stats import RunStatistics
from dialforge.report.tables import Table, group_tables, overall_tables


def render_text(stats: RunStatistics) -> str:
    """What ``dialforge stats`` prints: the dialogue count, then every table of ``tables``."""
    out = [f"{stats.dialogues} dialogues"]
    for table in [*group_tables(stats), *overall_tables(stats)]:
        out += ["", f"{table.title} ({table.note})" if table.note else table.title, _text_table(table)]
    return "\n".join(out) + "\n"


def _text_table(table: Table) -> str:
    """Columns padded to their widest cell: labels to the left, figures to the right; ``none`` for no rows."""
    if not table.rows:
        return "none"
    lines = [table.headers, *table.rows]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    rule = tuple("-" * width for width in widths)
    return "\n".join(
        "  ".join(
            cell.ljust(width) if index < table.label_columns else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [lines[0], rule, *lines[1:]]
    )
