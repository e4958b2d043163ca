"""Render report sections as Markdown (figures linked) and as one self-contained HTML file.

The HTML embeds every figure as a base64 PNG and carries its own CSS: no scripts, no external
stylesheets, fonts or images, so it opens offline and can be mailed as a single file.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

from resbench.report.sections import FigureRef, Missing, Section, Table

if TYPE_CHECKING:
    import pandas as pd

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1180px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #eee; padding-bottom: .2em; }
nav ol { columns: 2; font-size: .95em; }
.table-wrap { overflow-x: auto; margin: .8em 0; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; white-space: nowrap; }
th { background: #f3f5f8; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
td { background: #fff; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td:first-child, th:first-child { position: sticky; left: 0; z-index: 1; }
th.sorted, td.sorted { position: sticky; right: 0; z-index: 1; font-weight: 600;
                       box-shadow: -2px 0 3px rgba(0, 0, 0, .12); }
th.sorted::after { content: " \\25BC"; font-size: .8em; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .95em;
          padding-top: .4em; white-space: normal; position: sticky; left: 0;
          max-width: calc(100vw - 4em); }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .95em; margin-top: .3em; }
.unavailable { color: #8a5a00; background: #fff8e6; border-left: 3px solid #e0b040;
               padding: .4em .8em; }
.meta { color: #666; font-size: .9em; }
"""


def _numbered(sections: list[Section]) -> dict[int, int]:
    """Figure and table numbers in reading order, keyed by the block's id()."""
    numbers: dict[int, int] = {}
    counters = {FigureRef: 0, Table: 0}
    for section in sections:
        for block in section.blocks:
            kind = type(block)
            if kind in counters:
                counters[kind] += 1
                numbers[id(block)] = counters[kind]
    return numbers


# Marks escaped with a backslash; "_" only where it could open or close emphasis (CommonMark
# never reads an underscore between two letters or digits as one, so resnet56_gated stays as is).
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_text(value: object) -> str:
    """``value`` as literal text in Markdown, as ``html.escape`` makes it literal in HTML: HTML
    tags and entities are escaped, Markdown's emphasis, code, link, table and heading marks are
    backslash-escaped, and a line break becomes a space (a spec named ``<img src=x>`` or
    ``[click](javascript:...)`` shows as those characters, in a table cell as in prose)."""
    text = html.escape(str(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\r", " ").replace("\n", " ")


_md_cell = md_text


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's cells as text."""
    header = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def text_table(frame: pd.DataFrame) -> str:
    """The frame's cells as aligned plain text for a terminal: the first column left-aligned,
    the others right-aligned, a rule under the header."""
    header = [str(c) for c in frame.columns]
    body = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def to_markdown(title: str, meta: str, sections: list[Section], out_dir: Path) -> str:
    """The report as Markdown; figures are linked relative to ``out_dir``."""
    numbers = _numbered(sections)
    md = md_text
    lines = [f"# {md(title)}", "", md(meta), ""]
    for section in sections:
        lines += [f"## {md(section.title)}", ""]
        if section.unavailable:
            lines += [f"_Not available because {md(section.unavailable)}._", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines += [markdown_table(block.frame), "",
                          f"*Table {numbers[id(block)]}. {md(block.caption)}*", ""]
            elif isinstance(block, FigureRef):
                link = block.path.relative_to(out_dir).as_posix()
                lines += [f"![{md(block.title)}]({link})", "",
                          f"*Figure {numbers[id(block)]}. {md(block.title)}. "
                          f"{md(block.caption)}*", ""]
            elif isinstance(block, Missing):
                lines += [f"_{md(block.text())}_", ""]
            else:
                lines += [md(block), ""]
    return "\n".join(lines).rstrip() + "\n"


def html_table(frame: pd.DataFrame, caption: str, sorted_by: str | None = None) -> str:
    """An escaped HTML table with a caption. On a narrow window it scrolls sideways with its
    first column pinned left and the ``sorted_by`` column pinned right, so both stay in view."""
    marks = [' class="sorted" aria-sort="descending"' if c == sorted_by else ""
             for c in frame.columns]
    cells = [' class="sorted"' if c == sorted_by else "" for c in frame.columns]
    head = "".join(f"<th{m}>{html.escape(str(c))}</th>" for c, m in zip(frame.columns, marks))
    rows = "".join("<tr>" + "".join(f"<td{m}>{html.escape(str(v))}</td>"
                                    for v, m in zip(row, cells)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return (f'<div class="table-wrap"><table><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")


def embedded_png(path: Path) -> str:
    """A ``data:`` URI of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(title: str, meta: str, sections: list[Section]) -> str:
    """The report as one HTML document with every figure embedded."""
    numbers = _numbered(sections)
    esc = html.escape
    toc = "".join(f'<li><a href="#{s.id}">{esc(s.title)}</a></li>' for s in sections)
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1><p class=\"meta\">{esc(meta)}</p>",
             f"<nav><ol>{toc}</ol></nav>"]
    for section in sections:
        parts.append(f'<section id="{section.id}"><h2>{esc(section.title)}</h2>')
        if section.unavailable:
            parts.append(f'<p class="unavailable">Not available because '
                         f'{esc(section.unavailable)}.</p>')
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(html_table(block.frame,
                                        f"Table {numbers[id(block)]}. {block.caption}",
                                        block.sorted_by))
            elif isinstance(block, FigureRef):
                parts.append(f'<figure><img src="{embedded_png(block.path)}" '
                             f'alt="{esc(block.title)}"><figcaption><b>Figure '
                             f'{numbers[id(block)]}. {esc(block.title)}.</b> '
                             f'{esc(block.caption)}</figcaption></figure>')
            elif isinstance(block, Missing):
                parts.append(f'<p class="unavailable">{esc(block.text())}</p>')
            else:
                parts.append(f"<p>{esc(block)}</p>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
