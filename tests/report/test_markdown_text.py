"""report.md shows user text (spec names, reasons) literally, as report.html does."""
from __future__ import annotations

import html
import re

import pandas as pd

from resbench.report.render import md_text, to_html, to_markdown
from resbench.report.sections import Missing, Section, Table

HOSTILE = ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "**bold** `code`",
           "a|b", "# heading\nnext line", "back\\slash", "&amp;", "_em_ and __strong__"]


def _unescape_md(text: str) -> str:
    return html.unescape(re.sub(r"\\(.)", r"\1", text))


def test_md_text_escapes_every_markup_and_keeps_the_characters():
    for name in HOSTILE:
        text = md_text(name)
        assert "<" not in text and "\n" not in text
        assert not re.search(r"(?<!\\)[*`|\[\]#]|(?<![\\\w])_", text), text  # marks escaped
        assert _unescape_md(text) == name.replace("\n", " ")


def test_spec_names_in_tables_and_prose_are_literal_in_markdown_as_in_html(tmp_path):
    frame = pd.DataFrame({"spec": HOSTILE, "params": ["1"] * len(HOSTILE)})
    sections = [Section("leaderboard", "Leaderboard", [
        Table(frame, f"best is {HOSTILE[0]}"), f"prose naming {HOSTILE[1]}",
        Missing(f"spec {HOSTILE[2]} failed")])]
    md = to_markdown("report", "meta", sections, tmp_path)
    page = to_html("report", "meta", sections)
    assert "<img" not in md and "<img src=x" not in page
    assert not re.search(r"(?<!\\)\]\(javascript:", md)  # no link (only an escaped bracket)
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 2 + len(HOSTILE)  # no name split a row or added a column
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 3 for row in table_rows)


def test_underscores_inside_names_stay_readable():
    assert md_text("resnet56_option_a") == "resnet56_option_a"
    assert md_text("_private") == "\\_private"
