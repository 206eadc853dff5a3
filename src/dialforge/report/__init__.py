"""What a finished run looks like: statistics (the paper's Table 1 and more) and a self-contained HTML report."""

from __future__ import annotations

from dialforge.report.stats import RunStatistics, read_records, run_statistics
from dialforge.report.text import render_text

__all__ = ["RunStatistics", "read_records", "render_text", "run_statistics"]
