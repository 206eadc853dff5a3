"""SQL read as text, for what SQLite keeps only as written: CHECK clauses and trigger bodies (no pragma lists
them), and the statements of a script, which errors name by their line and first words.

A small tokenizer is enough: strings, quoted identifiers and comments are recognised so that the commas,
parentheses and keywords inside them are not mistaken for structure; everything shown is the original text
with comments dropped and whitespace collapsed, so a model copies names and values exactly as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<string>'(?:[^']|'')*'?)
    |(?P<ident>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?)
    |(?P<word>[\w$]+)
    |(?P<punct>[(),;])
    |(?P<op>.)""",
    re.VERBOSE | re.DOTALL,
)
_TABLE_CONSTRAINTS = {"CONSTRAINT", "CHECK", "UNIQUE", "PRIMARY", "FOREIGN"}
_TRIGGER_EVENTS = {"BEFORE", "AFTER", "INSTEAD", "DELETE", "INSERT", "UPDATE"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def keyword(self) -> str:
        """The upper-cased word, empty for anything else (a quoted name is never a keyword)."""
        return self.text.upper() if self.kind == "word" else ""


def tokens(sql: str, start: int = 0) -> list[Token]:
    """The tokens that carry meaning: whitespace and comments left out."""
    return [
        Token(match.lastgroup or "op", match.group(), match.start(), match.end())
        for match in _TOKEN.finditer(sql, start)
        if match.lastgroup not in ("space", "comment")
    ]


def compact(sql: str) -> str:
    """The text on one line: comments dropped, whitespace outside literals collapsed to one space."""
    parts: list[str] = []
    for match in _TOKEN.finditer(sql):
        if match.lastgroup in ("space", "comment"):
            if parts and parts[-1] != " ":
                parts.append(" ")
        else:
            parts.append(match.group())
    return "".join(parts).strip()


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def unquote(token: Token) -> str:
    """An identifier as SQLite reads it: quotes removed, doubled quotes made single, ``[x]`` read as ``x``."""
    if token.kind == "ident" and token.text[0] == "[":
        return token.text[1:-1]
    if token.kind in ("ident", "string"):
        quote = token.text[0]
        return token.text[1:-1].replace(quote * 2, quote)
    return token.text


@dataclass(frozen=True)
class CheckClauses:
    """The CHECK expressions of one CREATE TABLE: per column (keyed by its casefolded name) and table-wide."""

    columns: dict[str, tuple[str, ...]]
    table: tuple[str, ...]


def check_clauses(create_table: str) -> CheckClauses:
    """Every ``CHECK (expr)`` of a CREATE TABLE statement, each expression as written."""
    items = _definition_items(tokens(create_table))
    columns: dict[str, tuple[str, ...]] = {}
    table: list[str] = []
    for item in items:
        checks = _checks(create_table, item)
        if not checks:
            continue
        if item[0].keyword in _TABLE_CONSTRAINTS:
            table.extend(checks)
        else:
            name = unquote(item[0]).casefold()
            columns[name] = (*columns.get(name, ()), *checks)
    return CheckClauses(columns=columns, table=tuple(table))


def _definition_items(toks: list[Token]) -> list[list[Token]]:
    """The column definitions and table constraints between the outer parentheses, split at their commas."""
    opening = next((i for i, token in enumerate(toks) if token.text == "("), None)
    if opening is None:
        return []
    items: list[list[Token]] = [[]]
    depth = 0
    for token in toks[opening + 1 :]:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            if depth == 0:
                break
            depth -= 1
        elif token.text == "," and depth == 0:
            items.append([])
            continue
        items[-1].append(token)
    return [item for item in items if item]


def _checks(sql: str, item: list[Token]) -> list[str]:
    """The expressions of the CHECK constraints in one definition item."""
    found = []
    depth = 0
    for index, token in enumerate(item):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif depth == 0 and token.keyword == "CHECK" and index + 1 < len(item) and item[index + 1].text == "(":
            closing = _matching(item, index + 1)
            if closing is not None:
                found.append(compact(sql[item[index + 1].end : item[closing].start]))
    return found


def _matching(toks: list[Token], opening: int) -> int | None:
    depth = 0
    for index in range(opening, len(toks)):
        if toks[index].text == "(":
            depth += 1
        elif toks[index].text == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


def trigger_summary(create_trigger: str) -> str:
    """``AFTER INSERT ON t WHEN cond: UPDATE ...; ...``: when the trigger fires and what it does, on one line."""
    toks = tokens(create_trigger)
    trigger = next((i for i, token in enumerate(toks) if token.keyword == "TRIGGER"), None)
    if trigger is None:
        return compact(create_trigger)
    index = trigger + 1
    if [token.keyword for token in toks[index : index + 3]] == ["IF", "NOT", "EXISTS"]:
        index += 3
    index += 3 if index + 1 < len(toks) and toks[index + 1].text == "." else 1  # the name, schema-qualified or not
    begin = next((i for i in range(index, len(toks)) if toks[i].keyword == "BEGIN"), None)
    if begin is None or index >= len(toks):
        return compact(create_trigger)
    end = len(toks) - 1 if toks[-1].keyword == "END" else len(toks)
    head = compact(create_trigger[toks[index].start : toks[begin].start])
    body = compact(create_trigger[toks[begin].end : toks[end].start if end < len(toks) else len(create_trigger)])
    return f"{head}: {body}"


def statement_start(script: str, position: int) -> int:
    """Where the next statement begins: past whitespace, comments and empty statements."""
    while True:
        match = _TOKEN.match(script, position)
        if match is None or (match.lastgroup not in ("space", "comment") and match.group() != ";"):
            return position
        position = match.end()


def line_of(script: str, position: int) -> int:
    return script.count("\n", 0, position) + 1


def first_words(script: str, position: int, limit: int = 60) -> str:
    """The opening of the statement at ``position``, enough to find it in the script."""
    end = min(len(script), position + 4 * limit)
    for match in _TOKEN.finditer(script, position, end):
        if match.group() == ";":
            end = match.start()
            break
    return shorten(compact(script[position:end]), limit)
