"""What a whole run spent, per role: its preparation and its dialogues, each role's share of the tokens and,
where the run's config prices the role's model, the cost.

The dialogues' usage is in their records; the preparation's (the generator role writing questions, tools,
policies and goals: often a large share of a run) is in ``artifacts/stage_reports.jsonl``, each stage with
the usage it took, kept with the stage's items so that a resumed run still counts what was spent before it.
Prices come from the run's ``config.yaml``, the model of each role from the records' ``generator``.

What the records cannot hold is in the run's ledger (``usage.json``, every session): the transport's retries,
the calls that finally failed and the unusable replies, each by kind; ``read_model_calls`` reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from dialforge.llm.accounting import Price
from dialforge.model.usage import USAGE_BY_ROLE, UsageByRole, usage_sum
from dialforge.runner.usage_file import read_run_calls

T = TypeVar("T")
Phase = Literal["preparation", "dialogues"]
_PRICES: TypeAdapter[dict[str, Price]] = TypeAdapter(dict[str, Price])


class RoleSpend(BaseModel):
    """One role's usage in one phase of the run."""

    phase: Phase
    role: str
    model: str | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    seconds: float = 0.0
    tokens: int = Field(default=0, description="prompt + completion tokens (reasoning is part of completion)")
    share: float | None = Field(default=None, description="of all the run's tokens")
    cost: float | None = Field(default=None, description="USD, when the config prices this model")


class RunUsage(BaseModel):
    """Every role's usage over the whole run, preparation first."""

    roles: list[RoleSpend] = Field(default_factory=list)
    tokens: int = 0
    cost: float | None = Field(default=None, description="USD of the priced rows; None when no row is priced")


class ModelCalls(BaseModel):
    """One role's calls to one model over every session of the run, as the run's ledger counted them."""

    role: str
    model: str
    calls: int = Field(default=0, description="replies received, unusable ones included")
    tokens: int = Field(default=0, description="prompt + completion tokens")
    retries: dict[str, int] = Field(default_factory=dict, description="requests sent again, by why (429, 5xx...)")
    failed_calls: dict[str, int] = Field(default_factory=dict, description="calls that gave up, by kind")
    output_problems: dict[str, int] = Field(default_factory=dict, description="unusable replies, by kind")
    repaired: int = Field(default=0, description="unusable replies whose repair request got a usable one")
    cost: float | None = Field(default=None, description="USD, when the config prices this model")


class RunModelCalls(BaseModel):
    """The run's ledger: every (role, model) row and the totals of its counts, over ``sessions`` sessions."""

    sessions: int = 0
    calls: int = 0
    retries: int = 0
    failed_calls: int = 0
    output_problems: int = 0
    repaired: int = 0
    models: list[ModelCalls] = Field(default_factory=list)


def read_model_calls(run_dir: Path) -> RunModelCalls:
    """What the run's ``usage.json`` counted over every session (nothing for a run without one); ValueError
    names a file that is not one."""
    saved = read_run_calls(run_dir)
    rows = []
    for row in saved.total:
        problems = dict(row.output_problems)
        repaired = problems.pop("repaired", 0)
        rows.append(
            ModelCalls(
                role=row.role,
                model=row.model,
                calls=row.usage.calls,
                tokens=row.usage.prompt_tokens + row.usage.completion_tokens,
                retries=_most_first(row.retries),
                failed_calls=_most_first(row.failures),
                output_problems=_most_first(problems),
                repaired=repaired,
                cost=row.cost,
            )
        )
    return RunModelCalls(
        sessions=len(saved.sessions),
        calls=sum(row.calls for row in rows),
        retries=sum(sum(row.retries.values()) for row in rows),
        failed_calls=sum(sum(row.failed_calls.values()) for row in rows),
        output_problems=sum(sum(row.output_problems.values()) for row in rows),
        repaired=sum(row.repaired for row in rows),
        models=rows,
    )


def _most_first(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def run_usage(phases: Mapping[Phase, UsageByRole], models: Mapping[str, str], prices: Mapping[str, Price]) -> RunUsage:
    """The rows of every phase and role that made a call, with shares of the run's tokens and costs."""
    rows = []
    for phase, by_role in phases.items():
        for role, usage in sorted(by_role.items()):
            model = models.get(role)
            price = prices.get(model) if model is not None else None
            rows.append(
                RoleSpend(
                    phase=phase,
                    role=role,
                    model=model,
                    **usage.model_dump(),
                    tokens=usage.prompt_tokens + usage.completion_tokens,
                    cost=price.cost(usage) if price is not None else None,
                )
            )
    tokens = sum(row.tokens for row in rows)
    for row in rows:
        row.share = row.tokens / tokens if tokens else None
    costs = [row.cost for row in rows if row.cost is not None]
    return RunUsage(roles=rows, tokens=tokens, cost=sum(costs) if costs else None)


def read_stage_reports(run_dir: Path, field: str, kind: TypeAdapter[T], empty: T) -> Iterator[tuple[dict[str, Any], T]]:
    """Each preparation stage's report (none when nothing was prepared) with its ``field`` read as ``kind``
    (``empty`` when the report has none); ValueError names a line that is not a stage report."""
    path = run_dir / "artifacts" / "stage_reports.jsonl"
    if not path.is_file():
        return
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if line.strip():
            try:
                report = orjson.loads(line)
                value = kind.validate_python(report.get(field) or empty)
            except (orjson.JSONDecodeError, ValidationError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a stage report ({exc})") from None
            yield report, value


def read_preparation_usage(run_dir: Path) -> UsageByRole:
    """The usage of every preparation stage of the run, summed per role (none when nothing was prepared)."""
    total: UsageByRole = {}
    for _, usage in read_stage_reports(run_dir, "usage", USAGE_BY_ROLE, {}):
        total = usage_sum(total, usage)
    return total


def read_prices(run_dir: Path) -> dict[str, Price]:
    """The price table of the run's ``config.yaml`` (none without one)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        config: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return _PRICES.validate_python(config.get("prices") or {})
    except (yaml.YAMLError, AttributeError, ValidationError) as exc:
        raise ValueError(f"{path}: cannot read its prices ({exc})") from None
