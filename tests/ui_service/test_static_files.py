"""The page's files themselves: complete translations, advice for every class, no inline code."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from tests.support.paths import MODEL_REPOSITORY, SEED_LABELS
from tests.ui_service.browsing import HTML_DIR, LANGUAGES, strings

APP_JS = (HTML_DIR / "app.js").read_text(encoding="utf-8")
INDEX = (HTML_DIR / "index.html").read_text(encoding="utf-8")
SOURCES = ("IITA", "CABI", "FAO")


def flat_keys(language: str) -> set[str]:
    return {key for key in strings(language) if key != "advice"}


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def label_codes() -> set[str]:
    """Class codes of every labels.json the stack may serve: the article's and the demo model's."""
    files = [SEED_LABELS, *MODEL_REPOSITORY.glob("*/labels.json")]
    return {entry["code"] for path in files for entry in json.loads(path.read_text())}


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_every_language_has_every_string_with_the_same_placeholders(language: str) -> None:
    english, other = strings("en"), strings(language)
    assert flat_keys(language) == flat_keys("en")
    for key in flat_keys("en"):
        assert other[key].strip(), key
        assert placeholders(other[key]) == placeholders(english[key]), key
    assert other["advice"].keys() == english["advice"].keys()


def test_the_strings_the_page_uses_exist() -> None:
    used = set(re.findall(r'data-i18n(?:-alt)?="([^"]+)"', INDEX))
    # Keys written out in app.js: t('...'), and 'error.x' / 'upload.x' ... literals.
    used |= set(re.findall(r"'((?:app|error|upload|result|confidence|advice|action|photo)"
                           r"\.[a-z_]+)'", APP_JS))
    assert len(used) > 40
    assert used - flat_keys("en") == set()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_class_has_a_name_and_advice_with_sources(language: str) -> None:
    words = strings(language)
    for code in label_codes():
        assert words[f"class.{code}"].strip()
        advice = words["advice"][code]
        assert len(advice["steps"]) >= 2 and all(step.strip() for step in advice["steps"])
        assert advice["sources"] and all(
            any(source.startswith(org) for org in SOURCES) for source in advice["sources"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_cgm_advice_is_about_the_green_mite(language: str) -> None:
    """Class 2 is cassava green mite damage (iCassava), whatever the article's label says."""
    words = strings(language)
    assert "(CGM)" in words["class.CGM"]
    assert "Mononychellus tanajoa" in " ".join(words["advice"]["CGM"]["steps"])
    assert "Typhlodromalus aripo" in " ".join(words["advice"]["CGM"]["steps"])
    assert "mottle" not in words["class.CGM"].lower()


class _Inline(HTMLParser):
    """Collects what the CSP would block: inline scripts, style blocks and attributes, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        self._tag = tag
        if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
            self.found.append(tag)
        if tag == "script" and "src" not in names:
            self.found.append("inline script")

    def handle_data(self, data: str) -> None:
        if self._tag == "script" and data.strip():
            self.found.append("script body")


def test_index_has_no_inline_code_and_no_outside_addresses() -> None:
    parser = _Inline()
    parser.feed(INDEX)
    assert parser.found == []
    for path in HTML_DIR.rglob("*"):
        if path.relative_to(HTML_DIR).parts[0] == "vendor":
            continue  # third-party code from npm, pinned by package-lock.json
        if path.suffix in {".html", ".js", ".css", ".json", ".webmanifest", ".svg"}:
            text = path.read_text(encoding="utf-8")
            assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text) == [], path.name
            assert "innerHTML" not in text and "eval(" not in text, path.name


def test_the_shell_lists_only_files_that_exist() -> None:
    sw = (HTML_DIR / "sw.js").read_text(encoding="utf-8")
    shell = re.search(r"const SHELL = \[(.*?)\];", sw, re.S)
    assert shell
    paths = re.findall(r"'([^']*)'", shell.group(1))
    assert "./" in paths, paths  # the page itself, at least
    for path in paths:
        assert (HTML_DIR / ("index.html" if path == "./" else path)).is_file(), path
