"""Seeded, readable JSON values that satisfy a JSON schema: what offline models answer with.

Covers the draft 2020-12 subset that tool parameters and response formats use: ``type`` (also
lists, so ``["string", "null"]`` is nullable), ``enum``, ``const``, objects (``properties``,
``required``, ``additionalProperties``, ``patternProperties`` for required names,
``minProperties``/``maxProperties``), arrays (``items``, ``prefixItems``, ``minItems``/``maxItems``,
``uniqueItems``), strings (``minLength``/``maxLength``, ``format`` date, date-time, time, email,
uuid, uri, and ``pattern``), numbers (``minimum``/``maximum``, exclusive bounds, ``multipleOf``),
``anyOf``/``oneOf`` (one branch), ``allOf`` (merged), and local ``$ref`` (``#/$defs/...``,
``#/definitions/...``) with a recursion guard that turns minimal after a few expansions.

Values are readable rather than random: words from a small vocabulary, and property names steer
the value (``order_id`` gets ``"ORD-48213"``, ``email`` an address, ``*_date`` a date).

Limits: ``pattern`` is written from CPython's own regex parse (``re._parser``: literals, classes,
``\\d \\w \\s``, groups, alternation, quantifiers, backreferences), aimed at the length bounds and
checked with ``re.search``; lookarounds, conditionals and ECMA-only syntax (``\\p{L}``) cannot be
written, so such a pattern yields plain words that may not match. ``not``, ``if``/``then``/``else``,
``contains``, ``dependent*``, ``propertyNames``, ``unevaluated*`` and remote ``$ref`` are ignored;
``enum`` values are not re-checked against sibling keywords; ``minProperties`` is met only from
listed properties; a float ``multipleOf`` is searched for a value that jsonschema's float division
accepts (it rejects 0.3 for 0.1) and gives up after a few tries. A schema with no instance the
sampler can build raises ``SchemaSamplingError``.
"""

from __future__ import annotations

import copy
import math
import random
import re
import uuid
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    # The stubs describe CPython's regex parser under its pre-3.11 names, which re-export the same modules.
    import sre_constants as sre
    import sre_parse
else:
    from re import _constants as sre
    from re import _parser as sre_parse

MINIMAL_AFTER_REFS = 2
"""``$ref`` expansions on one path after which optional parts are left out, so recursion ends."""
_MAX_REFS = 48
_REPEAT_SPREADS = (3, 6, 12, 24, 48)
_NUMBER_TRIES = 24
_Number = TypeVar("_Number", int, float)

_WORDS = (
    "blue", "river", "garden", "window", "coffee", "paper", "silver", "forest", "market", "travel",
    "morning", "yellow", "station", "bright", "harbor", "simple", "winter", "summer", "orange", "ticket",
)  # fmt: skip
_SENTENCES = (
    "I would like to check the status of my order.",
    "Can you help me change my booking to next week?",
    "Please cancel the subscription on my account.",
    "What are the opening hours of the nearest store?",
    "I need a refund for the damaged item.",
    "Could you find a table for two tonight?",
)
_FIRST_NAMES = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Giulia", "Hiro", "Ines", "Jonas")
_LAST_NAMES = ("Garcia", "Kim", "Novak", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Silva", "Moreau")
_CITIES = ("Lisbon", "Osaka", "Toronto", "Nairobi", "Berlin", "Austin", "Lyon", "Seoul")
_COUNTRIES = ("Portugal", "Japan", "Canada", "Kenya", "Germany", "Brazil", "France", "India")
_STATUSES = ("active", "pending", "shipped", "cancelled", "confirmed")
_CURRENCIES = ("USD", "EUR", "GBP", "JPY")
_STREETS = ("Oak Street", "Maple Avenue", "Harbor Road", "Station Lane")
_TEXT_NAMES = ("message", "query", "question", "description", "reason", "note", "comment", "text", "content")
_NUMBER_RANGES = {
    "age": (18, 80),
    "year": (2020, 2026),
    "quantity": (1, 10),
    "count": (1, 10),
    "limit": (1, 20),
    "price": (5, 500),
    "amount": (5, 500),
    "rating": (1, 5),
}
_PLAIN = "abcdefghijklmnopqrstuvwxyz"
_ALNUM = _PLAIN + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_OBJECT_KEYS = frozenset(("properties", "required", "additionalProperties", "minProperties", "maxProperties"))
_ARRAY_KEYS = frozenset(("items", "prefixItems", "minItems", "maxItems", "uniqueItems"))
_STRING_KEYS = frozenset(("minLength", "maxLength", "pattern", "format"))
_NUMBER_KEYS = frozenset(("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"))
_LOWER_BOUNDS = frozenset(("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"))
_UPPER_BOUNDS = frozenset(("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"))


class SchemaSamplingError(ValueError):
    """The schema has no instance the sampler can build (contradictory, or recursive without end)."""


def sample_json(schema: dict[str, Any] | bool, rng: random.Random) -> Any:
    """A value satisfying ``schema``, drawn only from ``rng`` so a seed reproduces it."""
    return _Sampler(schema, rng).value(schema, "", 0)


class _Sampler:
    """One sampling run: the root (for ``$ref``) and the random source."""

    def __init__(self, root: dict[str, Any] | bool, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self._validator: Draft202012Validator | None = None

    def value(self, schema: dict[str, Any] | bool, hint: str, refs: int) -> Any:
        """``hint`` is the property name the value is for; ``refs`` counts ``$ref`` expansions so far."""
        if schema is True:
            schema = {}
        if schema is False:
            raise SchemaSamplingError(f"the schema of {hint or 'the value'!r} is false: nothing satisfies it")
        schema, refs = self.resolve(schema, refs)
        if "allOf" in schema:
            schema, refs = self.merged([schema], refs)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            return copy.deepcopy(self.rng.choice(schema["enum"]))
        if "anyOf" in schema or "oneOf" in schema:
            return self.branch(schema, hint, refs)
        kind = self.pick_type(schema, refs > MINIMAL_AFTER_REFS)
        return _BY_TYPE[kind](self, schema, hint, refs)

    # -- references and combinators ------------------------------------------------------------

    def resolve(self, schema: dict[str, Any], refs: int) -> tuple[dict[str, Any], int]:
        while "$ref" in schema:
            refs += 1
            if refs > _MAX_REFS:
                raise SchemaSamplingError(f"$ref {schema['$ref']!r} recurses without a finite instance")
            target = self.lookup(schema["$ref"])
            if target is False:
                raise SchemaSamplingError(f"$ref {schema['$ref']!r} is the false schema")
            target = {} if target is True else target
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {"allOf": [target, siblings]} if siblings else target
        return schema, refs

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise SchemaSamplingError(f"only local $ref is supported, not {ref!r}")
        node: Any = self.root
        for part in ref[1:].split("/")[1:]:
            key = part.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(key)] if isinstance(node, list) else node[key]
            except (KeyError, IndexError, ValueError, TypeError):
                raise SchemaSamplingError(f"$ref {ref!r} points nowhere") from None
        return node

    def merged(self, parts: list[dict[str, Any]], refs: int) -> tuple[dict[str, Any], int]:
        """One schema equivalent to all ``parts`` (and their ``allOf``), with the ``$ref`` count reached."""
        flat, refs = self.flattened(parts, refs)
        out: dict[str, Any] = {}
        allowed: set[str] | None = None
        for part in flat:
            if part.get("additionalProperties") is False:
                names = set(part.get("properties", {}))
                allowed = names if allowed is None else allowed & names
            for key, value in part.items():
                if key not in out:
                    out[key] = value
                elif key == "properties":
                    mine = out[key]
                    out[key] = {
                        **mine,
                        **{n: {"allOf": [mine[n], s]} if n in mine else s for n, s in value.items()},
                    }
                elif key == "required":
                    out[key] = list(dict.fromkeys([*out[key], *value]))
                elif key == "enum":
                    out[key] = [v for v in out[key] if v in value]
                    if not out[key]:
                        raise SchemaSamplingError("allOf combines enums that share no value")
                elif key == "type":
                    out[key] = _common_types(out[key], value)
                elif key in _LOWER_BOUNDS:
                    out[key] = max(out[key], value)
                elif key in _UPPER_BOUNDS:
                    out[key] = min(out[key], value)
                elif key in ("anyOf", "oneOf"):
                    # (a1 | a2) & (b1 | b2) is (a1 & b1) | (a1 & b2) | ...; exactly-one survives this too.
                    out[key] = [{"allOf": [a, b]} for a in out[key] for b in value]
                else:
                    out[key] = value
        if allowed is not None:
            out["properties"] = {n: s for n, s in out.get("properties", {}).items() if n in allowed}
            out["additionalProperties"] = False
        return out, refs

    def flattened(self, parts: list[Any], refs: int) -> tuple[list[dict[str, Any]], int]:
        """The parts with ``$ref`` resolved and nested ``allOf`` spliced in."""
        flat: list[dict[str, Any]] = []
        deepest = refs
        for part in parts:
            if part is False:
                raise SchemaSamplingError("allOf contains a false schema: nothing satisfies it")
            part, reached = self.resolve({} if part is True else part, refs)
            flat.append({k: v for k, v in part.items() if k != "allOf"})
            nested, reached = self.flattened(part.get("allOf", []), reached)
            flat.extend(nested)
            deepest = max(deepest, reached)
        return flat, deepest

    def branch(self, schema: dict[str, Any], hint: str, refs: int) -> Any:
        """Sample one ``anyOf``/``oneOf`` branch merged with the keywords around it.

        A ``oneOf`` value must match exactly one branch, so branches are tried in turn, then once
        more as minimal values (no optional parts), which rarely satisfy two branches at once.
        """
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        minimal = refs > MINIMAL_AFTER_REFS
        any_branch = self.pick_branches(schema.get("anyOf", [{}]), minimal)[0]
        one_of = schema.get("oneOf")
        candidates = self.pick_branches(one_of or [{}], minimal)
        value = None
        for budget in (refs, max(refs, MINIMAL_AFTER_REFS + 1)):
            for candidate in candidates:
                value = self.value({"allOf": [rest, any_branch, candidate]}, hint, budget)
                if not one_of or sum(self.is_valid(value, b) for b in one_of) == 1:
                    return value
        return value

    def pick_branches(self, branches: list[Any], minimal: bool) -> list[Any]:
        """Branches in random order; when minimal, the ones that do not recurse come first."""
        order = list(branches)
        self.rng.shuffle(order)
        if minimal:
            order.sort(key=lambda b: b"$ref" in orjson.dumps(b))
        return order

    def is_valid(self, value: Any, schema: Any) -> bool:
        if self._validator is None:
            self._validator = Draft202012Validator(self.root)
        return self._validator.evolve(schema=schema).is_valid(value)

    def pick_type(self, schema: dict[str, Any], minimal: bool) -> str:
        declared = schema.get("type")
        if declared is None:
            keys = schema.keys()
            if keys & _OBJECT_KEYS:
                return "object"
            if keys & _ARRAY_KEYS:
                return "array"
            return "number" if keys & _NUMBER_KEYS and not keys & _STRING_KEYS else "string"
        kinds = _types(declared)
        if "null" in kinds and (minimal or len(kinds) == 1 or self.rng.random() < 0.2):
            return "null"
        return self.rng.choice([k for k in kinds if k != "null"])

    # -- one sampler per type --------------------------------------------------------------------

    def object(self, schema: dict[str, Any], hint: str, refs: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        required = list(schema.get("required", []))
        minimal = refs > MINIMAL_AFTER_REFS
        optional = [n for n in properties if n not in required]
        chosen = [] if minimal else [n for n in optional if self.rng.random() < 0.5]
        wanted = max(schema.get("minProperties", 0) - len(required) - len(chosen), 0)
        chosen += [n for n in optional if n not in chosen][:wanted]
        room = schema.get("maxProperties")
        if room is not None:
            chosen = chosen[: max(room - len(required), 0)]
        keep = set(required) | set(chosen)
        names = [n for n in properties if n in keep] + [n for n in required if n not in properties]
        return {name: self.value(self.property_schema(schema, name), name, refs) for name in names}

    def property_schema(self, schema: dict[str, Any], name: str) -> Any:
        if name in schema.get("properties", {}):
            return schema["properties"][name]
        for pattern, sub in schema.get("patternProperties", {}).items():
            if _compiled(pattern).search(name):
                return sub
        extra = schema.get("additionalProperties", True)
        if extra is False:
            raise SchemaSamplingError(f"property {name!r} is required but additionalProperties is false")
        return extra

    def array(self, schema: dict[str, Any], hint: str, refs: int) -> list[Any]:
        prefix: list[Any] = schema.get("prefixItems", [])
        items = schema.get("items", True)
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        top = low + 3 if high is None else min(high, low + 3)
        if items is False:
            top = min(top, len(prefix))
        if low > top:
            raise SchemaSamplingError(f"array {hint!r} needs {low} items but allows at most {top}")
        count = low if refs > MINIMAL_AFTER_REFS else self.rng.randint(min(max(low, 1), top), top)
        item_hint = _singular(hint)
        out: list[Any] = []
        seen: set[bytes] = set()
        for _attempt in range(count * 8 if schema.get("uniqueItems") else count):
            if len(out) == count:
                break
            position = len(out)
            value = self.value(prefix[position] if position < len(prefix) else items, item_hint, refs)
            if schema.get("uniqueItems"):
                key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                if key in seen:
                    continue
                seen.add(key)
            out.append(value)
        if len(out) < low:
            raise SchemaSamplingError(f"could not find {low} distinct items for array {hint!r}")
        return out

    def string(self, schema: dict[str, Any], hint: str, refs: int) -> str:
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        if "pattern" in schema:
            return self.patterned(schema["pattern"], low, high)
        make = _FORMATS.get(schema.get("format", "")) or _hinted(hint)
        if make is not None:
            text = make(self.rng)
            if low <= len(text) and (high is None or len(text) <= high):
                return text
        return self.words(low, high)

    def words(self, low: int, high: int | None) -> str:
        text = " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 3)))
        while len(text) < low:
            text += " " + self.rng.choice(_WORDS)
        return text if high is None else text[:high]

    def patterned(self, pattern: str, low: int, high: int | None) -> str:
        """A string written from the regex and checked against it; plain words when that fails."""
        constrained = low > 0 or high is not None
        for spread in _REPEAT_SPREADS:
            want = self.rng.randint(low, low + spread if high is None else high) if constrained else None
            try:
                text = _RegexWriter(self.rng, spread).write(_parsed(pattern), want)
                matches = _compiled(pattern).search(text) is not None
            except (re.error, _UnsupportedRegex):
                break
            if matches and low <= len(text) and (high is None or len(text) <= high):
                return text
        return self.words(low, high)

    def integer(self, schema: dict[str, Any], hint: str, refs: int) -> int:
        low, high, low_open, high_open = self.bounds(schema, hint)
        first = math.floor(low) + 1 if low_open else math.ceil(low)
        last = math.ceil(high) - 1 if high_open else math.floor(high)
        step = schema.get("multipleOf")
        if step is not None:
            unit = Fraction(str(step)).numerator  # the smallest integer that is a multiple of step
            first, last = math.ceil(Fraction(first, unit)), math.floor(Fraction(last, unit))
            return self.multiple(unit, step, first, last, hint, int)
        if first > last:
            raise SchemaSamplingError(f"no integer for {hint!r} lies in [{low}, {high}]")
        return self.rng.randint(first, last)

    def number(self, schema: dict[str, Any], hint: str, refs: int) -> float:
        low, high, low_open, high_open = self.bounds(schema, hint)
        step = schema.get("multipleOf")
        if step is not None:
            unit = Fraction(str(step))
            first = math.ceil(Fraction(str(low)) / unit)
            last = math.floor(Fraction(str(high)) / unit)
            if low_open and first * unit == Fraction(str(low)):
                first += 1
            if high_open and last * unit == Fraction(str(high)):
                last -= 1
            return self.multiple(unit, step, first, last, hint, float)
        if low > high or (low == high and (low_open or high_open)):
            raise SchemaSamplingError(f"no number for {hint!r} lies between {low} and {high}")
        value = round(self.rng.uniform(low, high), 2)
        above = low < value if low_open else low <= value
        below = value < high if high_open else value <= high
        inside = above and below
        return value if inside else (low + high) / 2

    def multiple(
        self,
        unit: Fraction | int,
        step: float | int,
        first: int,
        last: int,
        hint: str,
        kind: Callable[[Fraction | int], _Number],
    ) -> _Number:
        """``kind(k * unit)`` for a random ``k`` in ``[first, last]`` that jsonschema accepts as a
        multiple of ``step`` (its float division rejects e.g. 0.3 for 0.1); the last try if none is."""
        if first > last:
            raise SchemaSamplingError(f"no multiple of {step} for {hint!r} lies within its bounds")
        value = kind(unit * self.rng.randint(first, last))
        for _ in range(_NUMBER_TRIES - 1):
            if _is_multiple(value, step):
                return value
            value = kind(unit * self.rng.randint(first, last))
        return value

    def bounds(self, schema: dict[str, Any], hint: str) -> tuple[float, float, bool, bool]:
        """``(low, high, low_open, high_open)``, with a readable default span where the schema sets none."""
        low = max(schema.get("minimum", -math.inf), schema.get("exclusiveMinimum", -math.inf))
        high = min(schema.get("maximum", math.inf), schema.get("exclusiveMaximum", math.inf))
        low_open = schema.get("exclusiveMinimum", -math.inf) >= low > -math.inf
        high_open = schema.get("exclusiveMaximum", math.inf) <= high < math.inf
        default = next((r for key, r in _NUMBER_RANGES.items() if hint.lower().endswith(key)), (1, 100))
        span = default[1] - default[0]
        if math.isinf(low) and math.isinf(high):
            low, high = default
        elif math.isinf(low):
            low = high - span
        elif math.isinf(high):
            high = low + span
        return low, high, low_open, high_open

    def boolean(self, schema: dict[str, Any], hint: str, refs: int) -> bool:
        return self.rng.random() < 0.5

    def null(self, schema: dict[str, Any], hint: str, refs: int) -> None:
        return None


_BY_TYPE: dict[str, Callable[[_Sampler, dict[str, Any], str, int], Any]] = {
    "object": _Sampler.object,
    "array": _Sampler.array,
    "string": _Sampler.string,
    "integer": _Sampler.integer,
    "number": _Sampler.number,
    "boolean": _Sampler.boolean,
    "null": _Sampler.null,
}


def _types(declared: str | list[str]) -> list[str]:
    return [declared] if isinstance(declared, str) else list(declared)


def _common_types(first: str | list[str], second: str | list[str]) -> list[str]:
    """Types allowed by both; an integer is also a number."""
    a, b = _types(first), _types(second)
    common = [t for t in a if t in b or (t == "integer" and "number" in b)]
    common += [t for t in b if t == "integer" and "number" in a and t not in common]
    if not common:
        raise SchemaSamplingError(f"allOf asks for types {first!r} and {second!r} at once")
    return common


def _is_multiple(value: float | int, step: float | int) -> bool:
    """jsonschema's own test, float rounding included."""
    if isinstance(step, float):
        quotient = value / step
        return int(quotient) == quotient
    return value % step == 0


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


# -- readable strings ----------------------------------------------------------------------------

Make = Callable[[random.Random], str]


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2024, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _clock(rng: random.Random) -> str:
    return f"{rng.randint(8, 19):02d}:{rng.choice((0, 15, 30, 45)):02d}"


def person_name(rng: random.Random) -> str:
    """A plausible full name: what offline answers call a person."""
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST_NAMES)}.{rng.choice(_LAST_NAMES)}@example.com".lower()


def _uri(rng: random.Random) -> str:
    return f"https://example.com/{rng.choice(_WORDS)}/{rng.randint(1, 999)}"


_FORMATS: dict[str, Make] = {
    "date": _date,
    "date-time": lambda rng: f"{_date(rng)}T{_clock(rng)}:00Z",
    "time": lambda rng: f"{_clock(rng)}:00Z",
    "email": _email,
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "uri": _uri,
}


@lru_cache(maxsize=1024)
def _hinted(name: str) -> Make | None:
    """A maker of plausible values for a property called ``name``, if the name says what it holds."""
    key = name.lower()
    if "email" in key:
        return _email
    if key == "id" or key.endswith(("_id", "-id")) or name.endswith("Id"):
        stem = re.sub(r"[_-]?id$", "", key) or "id"
        return lambda rng: f"{stem[:3].upper()}-{rng.randint(10000, 99999)}"
    if key.endswith(("_at", "timestamp", "datetime")):
        return _FORMATS["date-time"]
    if key in ("date", "birthday") or key.endswith(("_date", "_on")) or name.endswith("Date"):
        return _date
    if key == "time" or key.endswith("_time") or name.endswith("Time"):
        return _clock
    if key.endswith(("url", "uri", "link", "website")):
        return _uri
    if key in ("first_name", "firstname", "given_name"):
        return lambda rng: rng.choice(_FIRST_NAMES)
    if key in ("last_name", "lastname", "surname", "family_name"):
        return lambda rng: rng.choice(_LAST_NAMES)
    if key.endswith("name"):
        return person_name
    if key.endswith("phone"):
        return lambda rng: f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    if key.endswith("city"):
        return lambda rng: rng.choice(_CITIES)
    if key.endswith("country"):
        return lambda rng: rng.choice(_COUNTRIES)
    if key.endswith("currency"):
        return lambda rng: rng.choice(_CURRENCIES)
    if key.endswith("status"):
        return lambda rng: rng.choice(_STATUSES)
    if key.endswith("address"):
        return lambda rng: f"{rng.randint(1, 120)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}"
    if key.endswith(_TEXT_NAMES):
        return lambda rng: rng.choice(_SENTENCES)
    return None


# -- strings from a regular expression -----------------------------------------------------------


class _UnsupportedRegex(Exception):
    """The pattern uses a construct the writer cannot generate (lookaround, conditional, ...)."""


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=256)
def _parsed(pattern: str) -> sre_parse.SubPattern:
    return sre_parse.parse(pattern)


class _RegexWriter:
    """Writes one string matching a parsed regex, aiming at a length when one is wanted.

    Repeats of a fixed-width body (``[A-Z0-9]+``, ``\\d{4,6}``) are sized to reach the wanted
    length; other unbounded repeats stretch by at most ``spread``.
    """

    def __init__(self, rng: random.Random, spread: int) -> None:
        self.rng = rng
        self.spread = spread
        self.groups: dict[int, str] = {}

    def write(self, items: sre_parse.SubPattern, want: int | None = None) -> str:
        data = items.data
        rest = [sre_parse.SubPattern(items.state, [item]).getwidth()[0] for item in data] if want else []
        out: list[str] = []
        written = 0
        for index, (op, arg) in enumerate(data):
            text = self.item(op, arg, want - written - sum(rest[index + 1 :]) if want else None)
            out.append(text)
            written += len(text)
        return "".join(out)

    def item(self, op: Any, arg: Any, want: int | None) -> str:
        if op is sre.LITERAL:
            return chr(arg)
        if op is sre.NOT_LITERAL:
            return self.rng.choice(_PLAIN.replace(chr(arg), ""))
        if op is sre.ANY:
            return self.rng.choice(_PLAIN)
        if op is sre.IN:
            return self.member(arg)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, body = arg
            width, widest = body.getwidth()
            if want is not None and width == widest > 0:
                count = max(low, min(want // width, high))
            else:
                count = self.rng.randint(low, min(high, low + self.spread))
            return "".join(self.write(body) for _ in range(count))
        if op is sre.SUBPATTERN:
            group, _add_flags, _del_flags, body = arg
            text = self.write(body, want)
            if group is not None:
                self.groups[group] = text
            return text
        if op is sre.ATOMIC_GROUP:
            return self.write(arg, want)
        if op is sre.BRANCH:
            return self.write(self.rng.choice(arg[1]), want)
        if op is sre.GROUPREF:
            return self.groups.get(arg, "")
        if op is sre.AT:
            return ""
        raise _UnsupportedRegex(str(op))

    def member(self, items: list[tuple[Any, Any]]) -> str:
        """A character of a class like ``[a-z0-9_]`` or ``[^,]``."""
        if items and items[0][0] is sre.NEGATE:
            allowed = [c for c in _ALNUM + " -_.," if not _in_class(c, items[1:])]
            if not allowed:
                raise _UnsupportedRegex("negated class excludes every readable character")
            return self.rng.choice(allowed)
        op, arg = self.rng.choice(items)
        if op is sre.LITERAL:
            return chr(arg)
        if op is sre.RANGE:
            return chr(self.rng.randint(*arg))
        if op is sre.CATEGORY:
            return self.rng.choice(_CATEGORY_CHARS[arg])
        raise _UnsupportedRegex(str(op))


_CATEGORY_CHARS = {
    sre.CATEGORY_DIGIT: "0123456789",
    sre.CATEGORY_NOT_DIGIT: _PLAIN,
    sre.CATEGORY_WORD: _ALNUM + "_",
    sre.CATEGORY_NOT_WORD: " -.,",
    sre.CATEGORY_SPACE: " ",
    sre.CATEGORY_NOT_SPACE: _ALNUM,
}


def _in_class(char: str, items: list[tuple[Any, Any]]) -> bool:
    code = ord(char)
    for op, arg in items:
        if (op is sre.LITERAL and code == arg) or (op is sre.RANGE and arg[0] <= code <= arg[1]):
            return True
        if op is sre.CATEGORY and char in _CATEGORY_CHARS[arg]:
            return True
    return False
