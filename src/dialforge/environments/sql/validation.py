"""Is a SQL tool fit to hand to an agent? Static checks, then a trial run on a throwaway fork.

Every tool goes through here, whoever wrote it (the scaffold, a person, a model), and every failure
comes back as a reason its author can act on: what is wrong, where, and the closest valid spelling.
The checks, in order: the name, the description and the parameter schema; the SQL parses as exactly
one allowed statement whose kind matches the declared one; every ``:name`` is declared and every
declared parameter is used; every table and column resolves against the schema (CTEs and aliases
included, case-insensitively, as SQLite resolves them). Only a tool that passes all of them is run:
on forks of the database, with arguments taken from the data (``trial.py``), until a run returns or
changes a row; writes land on the fork, which is then thrown away. A run that returns or changes no
row proves nothing: a tool no run proves is invalid unless the data leaves no way to (an empty table),
and a literal in the SQL that breaks a CHECK makes a write invalid whatever its trials did.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlglot import exp

from dialforge.environments.sql.environment import SQLDatabase, parse_statement
from dialforge.environments.sql.resolution import READS, Resolver, closest, dollar_parameter
from dialforge.environments.sql.schema import DatabaseSchema, Table, spelled
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.trial import run_trial

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""snake_case, at most 64 characters: stricter than the OpenAI rule, so names read alike everywhere."""


class ToolVerdict(BaseModel):
    """Whether a tool may be used, and if not, why; ``trial`` records the run that decided it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    valid: bool
    reasons: list[str]
    trial: dict[str, Any] | None = None

    @property
    def proof(self) -> str:
        """What the trials showed, in words: the run that returned or changed rows, why the tool is valid without
        one, or that no run did."""
        if not self.trial:
            return ""
        runs = self.trial["attempts"]
        ran = f"ran {runs} trial{'s' if runs > 1 else ''}"
        if "note" in self.trial:
            return f"{ran}; {self.trial['note']}"
        rows = self.trial.get("rows", 0)
        if not rows:
            return f"{ran}; none returned or changed a row"
        if self.trial["result"].startswith("rows_affected"):
            return f"trial {runs} changed {rows} row{'' if rows == 1 else 's'}"
        return f"trial {runs} returned {rows} row{'' if rows == 1 else 's'}"


def validate_tools(
    tools: Iterable[SQLTool],
    database: SQLDatabase,
    *,
    samples: int = 3,
    reserved_names: Collection[str] = (),
    clock: datetime | None = None,
) -> list[ToolVerdict]:
    """One verdict per tool, in order; a name already used (earlier in the list, or in ``reserved_names``,
    the tools a caller has accepted before) makes the later tool invalid."""
    taken = set(reserved_names)
    verdicts = []
    for tool in tools:
        verdict = validate_tool(tool, database, samples=samples, clock=clock)
        if tool.name in taken:
            verdict = verdict.model_copy(
                update={
                    "valid": False,
                    "reasons": [
                        f"the name {tool.name!r} is already taken by another tool; names must be unique",
                        *verdict.reasons,
                    ],
                }
            )
        taken.add(tool.name)
        verdicts.append(verdict)
    return verdicts


def validate_tool(
    tool: SQLTool, database: SQLDatabase, *, samples: int = 3, clock: datetime | None = None
) -> ToolVerdict:
    """Every check on one tool; the trial runs only when the static checks pass (else it repeats their errors).
    ``clock`` is the 'now' of the trial runs (``run_trial``)."""
    reasons = [*_spec_problems(tool)]
    try:
        statement = parse_statement(tool.sql)
    except ValueError as exc:
        return ToolVerdict(name=tool.name, valid=False, reasons=[*reasons, str(exc)])
    reasons.extend(_kind_problems(tool, statement))
    reasons.extend(_parameter_problems(tool, statement))
    resolver = Resolver(statement, database.schema)
    reasons.extend(resolver.problems)
    if reasons:
        return ToolVerdict(name=tool.name, valid=False, reasons=list(dict.fromkeys(reasons)))
    problems, trial = run_trial(tool, database, resolver, samples, clock)
    return ToolVerdict(name=tool.name, valid=not problems, reasons=problems, trial=trial)


# Static checks


def _spec_problems(tool: SQLTool) -> Iterator[str]:
    if not TOOL_NAME.match(tool.name):
        yield (
            f"the name {tool.name!r} is not snake_case: use 1-64 lower-case letters, digits and '_', "
            "starting with a letter (e.g. get_invoice_lines_for_invoice)"
        )
    if not tool.description.strip():
        yield "the description is empty: say what the tool does and what it returns"
    try:
        tool.to_spec()
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"][:1] == ("name",):  # the snake_case rule above already covers the name
                continue
            if error["type"] == "value_error":  # ToolSpec's own messages name the field already
                yield error["msg"].removeprefix("Value error, ")
            else:
                yield f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


def _kind_problems(tool: SQLTool, statement: exp.Expression) -> Iterator[str]:
    what = statement.key.upper()
    if isinstance(statement, READS) and tool.kind != "read":
        yield f"the statement ({what}) only reads rows: declare kind 'read', not {tool.kind!r}"
    elif not isinstance(statement, READS) and tool.kind != "write":
        yield f"the statement ({what}) changes rows: declare kind 'write', not {tool.kind!r}"


def _parameter_problems(tool: SQLTool, statement: exp.Expression) -> Iterator[str]:
    """Bind parameters against ``parameters.properties``: only ``:name``, each declared, each used."""
    declared = tool.parameters.get("properties")
    declared = list(declared) if isinstance(declared, dict) else []
    used: list[str] = []
    for node in statement.find_all(exp.Placeholder, exp.Parameter, exp.Column):
        if isinstance(node, exp.Placeholder) and not node.this:
            yield "the SQL uses a positional '?' parameter: name it (:customer_id) and declare it in parameters"
        elif isinstance(node, exp.Placeholder):
            used.append(node.name)
        elif isinstance(node, exp.Parameter):
            yield f"the SQL uses @{node.name}: only :name parameters are supported, write :{node.name}"
        elif dollar_parameter(node):
            yield f"the SQL uses {node.name}: only :name parameters are supported, write :{node.name[1:]}"
    for name in dict.fromkeys(used):
        if name not in declared:
            yield f"the SQL uses :{name} but parameters.properties does not declare it{closest(name, declared)}"
    for name in declared:
        if name not in used:
            yield f"parameter {name!r} is declared but the SQL never uses :{name}: use it or remove it"


# Read-back coverage


def read_back_gaps(tools: Iterable[SQLTool], schema: DatabaseSchema) -> dict[str, list[tuple[str, str]]]:
    """For each write tool, the (table, column) it writes that no read tool of the set returns: changes that
    neither the agent nor anyone checking its work could look at afterwards.

    A column counts as returned when a read tool selects it, even inside an expression (``first || ' ' || last``),
    though not only through an aggregate (``sum(total)``), or joins on it (the row it links to is what the read
    shows: ``review.customer_id`` through the reviewer's name); ``*`` returns every column of the tables it covers.
    Tools whose SQL does not parse are left out: their verdicts say why.
    """
    parsed = []
    for tool in tools:
        try:
            parsed.append((tool, parse_statement(tool.sql)))
        except ValueError:
            continue
    readable: set[tuple[str, str]] = set()
    for tool, statement in parsed:
        if tool.kind == "read":
            readable |= _returned_columns(Resolver(statement, schema))
    gaps = {}
    for tool, statement in parsed:
        if tool.kind == "write" and (written := _written_columns(Resolver(statement, schema))):
            unread = [
                (table, column) for table, column in written if (table.casefold(), column.casefold()) not in readable
            ]
            if unread:
                gaps[tool.name] = unread
    return gaps


def _returned_columns(resolver: Resolver) -> set[tuple[str, str]]:
    """(table, column), case-folded, of what a read's rows carry."""
    returned: set[tuple[str, str]] = set()
    for select in resolver.statement.find_all(exp.Select):
        if not _returns_rows(select, resolver.statement):
            continue
        joins = [join.args["on"] for join in select.args.get("joins") or () if join.args.get("on") is not None]
        for projection in [*select.expressions, *joins]:
            if isinstance(projection, exp.Star):
                tables = [node for node in select.find_all(exp.Table) if node.find_ancestor(exp.Select) is select]
                for node in tables:
                    if (table := resolver.table(node.name)) is not None:
                        returned |= {(table.name.casefold(), c.name.casefold()) for c in table.columns}
                continue
            for column in projection.find_all(exp.Column):
                if isinstance(column.find_ancestor(exp.AggFunc, exp.Select), exp.AggFunc):
                    continue  # inside an aggregate: the value is not read back
                if isinstance(column.this, exp.Star):
                    if column.table and (table := _star_table(resolver, column)) is not None:
                        returned |= {(table.name.casefold(), c.name.casefold()) for c in table.columns}
                elif (found := resolver.column_of(column)) is not None:
                    returned.add((found[0].name.casefold(), found[1].casefold()))
    return returned


def _star_table(resolver: Resolver, column: exp.Column) -> Table | None:
    """The schema table behind ``alias.*``."""
    for node in resolver.statement.find_all(exp.Table):
        if node.alias_or_name.casefold() == column.table.casefold():
            return resolver.table(node.name)
    return None


def _returns_rows(select: exp.Select, statement: exp.Expression) -> bool:
    """Whether a SELECT's rows reach the result: the statement itself, a UNION's branch, a CTE or a derived table,
    not a subquery in a condition."""
    node: exp.Expr = select
    while node is not statement:
        parent = node.parent
        passes = isinstance(parent, (exp.Union, exp.CTE, exp.With, exp.Subquery, exp.From, exp.Join)) or (
            isinstance(parent, exp.Select) and node.arg_key in ("from_", "joins", "with_")
        )
        if parent is None or not passes:
            return False
        node = parent
    return True


def _written_columns(resolver: Resolver) -> list[tuple[str, str]]:
    """(table, column) as the schema spells them, of what a write sets: an INSERT's columns, an UPDATE's SET (an
    upsert's too)."""
    statement, table = resolver.statement, resolver.target
    if table is None:
        return []
    names: list[str] = []
    if isinstance(statement, exp.Insert):
        if isinstance(statement.this, exp.Schema):
            names = [identifier.name for identifier in statement.this.expressions]
        else:
            names = [column.name for column in table.columns if not column.generated]
    assignments = list(statement.expressions) if isinstance(statement, exp.Update) else []
    for conflict in statement.find_all(exp.OnConflict):
        assignments.extend(conflict.expressions)
    names.extend(a.left.name for a in assignments if isinstance(a, exp.EQ) and isinstance(a.left, exp.Column))
    return list(dict.fromkeys((table.name, spelled(table, name)) for name in names))
