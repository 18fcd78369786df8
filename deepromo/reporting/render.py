"""Write a report as Markdown (images beside it) and as one self-contained HTML file (images inlined)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepromo.data.errors import UserInputError

__all__ = ["Section", "format_table", "markdown_table", "render_markdown", "render_html", "write_report"]

HTML_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
h1 { border-bottom: 2px solid #333; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


@dataclass
class Section:
    """One report section: a title (an ``##`` heading) and its Markdown body."""

    title: str
    body: str


def format_table(table: dict[str, dict[str, float]], digits: int = 3) -> str:
    """A Markdown table of a metrics table ``{method: {metric: value}}``: one row per method."""
    metrics = list(dict.fromkeys(k for row in table.values() for k in row))
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for method, row in table.items():
        cells = [f"{row[m]:.{digits}f}" if m in row else "" for m in metrics]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, fmt: str | Callable | None) -> str:
    if callable(fmt):
        return fmt(value)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "–"
        return format(value, fmt or ".3f")
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, formats: dict | None = None, index: bool = True) -> str:
    """A GitHub-style Markdown table of ``frame``; ``formats``: column -> format spec (e.g. ".1%") or callable.
    NaN floats show as "–". The index becomes the first column when ``index`` is true."""
    formats = formats or {}
    df = frame.reset_index() if index else frame
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    lines = [header, "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, formats.get(c)) for c, v in zip(df.columns, row)) + " |")
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], subtitle: str = "") -> str:
    """The whole report as Markdown: a title, an optional subtitle line, then one ``##`` heading per section."""
    parts = [f"# {title}", subtitle] if subtitle else [f"# {title}"]
    parts += [f"## {s.title}\n\n{s.body.strip()}" for s in sections]
    return "\n\n".join(parts) + "\n"


def _inline_images(body: str, base: Path) -> str:
    """Replace ``src="file.png"`` by a base64 data URI so the HTML file stands alone."""
    def embed(match: re.Match) -> str:
        path = base / html.unescape(match.group(1))
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^":]+\.png)"', embed, body)


def render_html(markdown_text: str, base: Path, title: str) -> str:
    """Markdown -> one HTML page (tables extension), images under ``base`` inlined."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head>\n<body>\n{_inline_images(body, base)}\n</body></html>\n")


def write_report(run_dir, title: str, sections: list[Section], subtitle: str = "",
                 formats=("md", "html")) -> list[Path]:
    """report.md and/or report.html in ``run_dir`` (images referenced by file name, relative to it)."""
    run_dir = Path(run_dir)
    unknown = set(formats) - {"md", "html"}
    if unknown:
        raise UserInputError(f"report formats: unknown {sorted(unknown)}; expected md and/or html")
    text = render_markdown(title, sections, subtitle)
    paths = []
    if "md" in formats:
        paths.append(run_dir / "report.md")
        paths[-1].write_text(text)
    if "html" in formats:
        paths.append(run_dir / "report.html")
        paths[-1].write_text(render_html(text, run_dir, title))
    return paths
