"""The packaged prompts: every one loads with its fragments resolved, files of sections parse, a broken reference
fails naming what is missing, and a prompt's digest follows its text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from string import Template

import pytest

import dialforge.prompts as prompts
from dialforge.prompts import (
    fragment_names,
    load_prompt,
    prompt_digest,
    prompt_digests,
    prompt_names,
    prompt_sections,
    render_section,
)

DIRECTIVE = re.compile(r"\{\{\s*(?:include|section)\b")


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A prompt folder of the test's own in place of the package's, with empty caches before and after."""
    (tmp_path / prompts.FRAGMENTS).mkdir()
    monkeypatch.setattr(prompts, "_files", lambda folder="": tmp_path / folder if folder else tmp_path)
    load_prompt.cache_clear()
    prompt_sections.cache_clear()
    yield tmp_path
    load_prompt.cache_clear()
    prompt_sections.cache_clear()


@pytest.mark.parametrize("name", prompt_names())
def test_every_packaged_prompt_loads_with_its_fragments_resolved_and_valid_placeholders(name: str) -> None:
    text = load_prompt(name)

    assert text.strip()
    if text.startswith("{{section"):
        sections = prompt_sections(name)
        assert sections and all(body.strip() for body in sections.values())
        pieces = list(sections.values())
    else:
        pieces = [text]
    for piece in pieces:
        assert not DIRECTIVE.search(piece), f"an unresolved directive in {name!r}"
        assert Template(piece).is_valid(), f"a stray $ in {name!r}: write $$ for a dollar sign"


def test_every_fragment_is_included_by_some_prompt() -> None:
    folder = resources.files(prompts)
    sources = [folder / f"{name}.md" for name in prompt_names()]
    sources += [folder / prompts.FRAGMENTS / f"{name}.md" for name in fragment_names()]
    included = {name for source in sources for name in re.findall(r"\{\{include (\w+)\}\}", source.read_text())}

    assert fragment_names() and set(fragment_names()) == included


def test_a_fragment_is_included_in_place_without_its_final_newline(package: Path) -> None:
    (package / "greeting.md").write_text("Hello.\n\n{{include body}}\n\nBye, $name.\n")
    (package / "fragments" / "body.md").write_text("Shared text, {{include inner}}.\n")
    (package / "fragments" / "inner.md").write_text("nested for $name\n")

    assert load_prompt("greeting") == "Hello.\n\nShared text, nested for $name.\n\nBye, $name.\n"
    assert prompts.render_prompt("greeting", name="Ana") == "Hello.\n\nShared text, nested for Ana.\n\nBye, Ana.\n"


def test_a_missing_fragment_is_named_with_the_prompt_that_includes_it(package: Path) -> None:
    (package / "broken.md").write_text("Intro.\n\n{{include nowhere}}\n")
    (package / "fragments" / "somewhere.md").write_text("text\n")

    with pytest.raises(ValueError, match=r"prompt 'broken' includes the fragment 'nowhere'") as raised:
        load_prompt("broken")
    assert "no fragments/nowhere.md; the fragments are ['somewhere']" in str(raised.value)


def test_a_fragment_that_includes_itself_is_refused(package: Path) -> None:
    (package / "loop.md").write_text("{{include a}}\n")
    (package / "fragments" / "a.md").write_text("{{include b}}\n")
    (package / "fragments" / "b.md").write_text("{{include a}}\n")

    with pytest.raises(ValueError, match="fragment 'a' includes itself: a -> b -> a"):
        load_prompt("loop")


def test_a_file_of_sections_gives_each_section_by_name(package: Path) -> None:
    (package / "parts.md").write_text("{{section hello}}\nHello, $name.\n\n{{section bye}}\n- Bye.\n- See you.\n")

    assert dict(prompt_sections("parts")) == {"hello": "Hello, $name.", "bye": "- Bye.\n- See you."}
    assert render_section("parts", "hello", name="Ana") == "Hello, Ana."
    with pytest.raises(ValueError, match=r"no section 'hi'; its sections are \['hello', 'bye'\]"):
        render_section("parts", "hi")


def test_text_outside_any_section_or_a_repeated_section_is_refused(package: Path) -> None:
    (package / "loose.md").write_text("Lost text.\n{{section a}}\nA.\n")
    (package / "twice.md").write_text("{{section a}}\nA.\n{{section a}}\nB.\n")

    with pytest.raises(ValueError, match="'loose' is not a file of sections"):
        prompt_sections("loose")
    with pytest.raises(ValueError, match="two sections named 'a'"):
        prompt_sections("twice")


def test_a_digest_is_short_stable_and_follows_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = prompt_digest("judge")
    assert re.fullmatch(r"[0-9a-f]{12}", digest) and prompt_digest("judge") == digest
    assert list(prompt_digests(["judge", "agent_system", "judge"])) == ["agent_system", "judge"]

    original = prompts.load_prompt
    monkeypatch.setattr(prompts, "load_prompt", lambda name: original(name) + " Be strict.")

    assert prompt_digest("judge") != digest
