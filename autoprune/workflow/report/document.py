"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML page from
the same model (images embedded as base64), so neither is parsed back from the other.

Example:
    >>> doc = Document()
    >>> doc.heading("Results").table(["model", "acc"], [["dense", 93.6]])
    >>> print(doc.to_markdown())
    # Results
    <BLANKLINE>
    | model | acc |
    |---|---|
    | dense | 93.60 |
    <BLANKLINE>
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Document", "Heading", "Paragraph", "Table", "Figure", "Interactive", "format_cell"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list]
    empty: str = "_No rows._"


@dataclass(frozen=True)
class Figure:
    path: Path


@dataclass(frozen=True)
class Interactive:
    """An interactive plot in HTML (``spec`` from :func:`~.interactive.plot_spec`); Markdown
    shows the static ``fallback`` image instead."""

    spec: dict
    fallback: Path


def format_cell(v) -> str:
    """Floats with 3 decimals below 10, 2 above; everything else as ``str``."""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


@dataclass
class Document:
    """Blocks in order; the builder methods return the document for chaining."""

    blocks: list = field(default_factory=list)
    title: str = "autoprune report"

    def heading(self, text: str, level: int = 1) -> Document:
        self.blocks.append(Heading(text, level))
        return self

    def paragraph(self, text: str) -> Document:
        self.blocks.append(Paragraph(text))
        return self

    def table(self, columns: list[str], rows: list[list], empty: str = "_No rows._"
              ) -> Document:
        self.blocks.append(Table(list(columns), [list(r) for r in rows], empty))
        return self

    def figure(self, path: Path) -> Document:
        self.blocks.append(Figure(Path(path)))
        return self

    def interactive(self, spec: dict, fallback: Path) -> Document:
        self.blocks.append(Interactive(spec, Path(fallback)))
        return self

    def to_markdown(self) -> str:
        """Markdown; figures link to their file names (the PNGs sit beside the report)."""
        out = []
        for b in self.blocks:
            if isinstance(b, Heading):
                out.append("#" * b.level + " " + b.text)
            elif isinstance(b, Paragraph):
                out.append(b.text)
            elif isinstance(b, Table):
                if not b.rows:
                    out.append(b.empty)
                    continue
                lines = ["| " + " | ".join(b.columns) + " |", "|" + "---|" * len(b.columns)]
                lines += ["| " + " | ".join(format_cell(v) for v in r) + " |" for r in b.rows]
                out.append("\n".join(lines))
            else:
                path = b.fallback if isinstance(b, Interactive) else b.path
                out.append(f"![{path.stem}]({path.name})")
        return "\n\n".join(out) + "\n"

    def to_html(self) -> str:
        """One self-contained page: images embedded, interactive plots drawn by an inline
        script, no external resources."""
        from autoprune.workflow.report.interactive import SCRIPT, STYLE, spec_json

        body = []
        for b in self.blocks:
            if isinstance(b, Heading):
                body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
            elif isinstance(b, Paragraph):
                body.append(f"<p>{html.escape(b.text)}</p>")
            elif isinstance(b, Table):
                if not b.rows:
                    body.append(f"<p>{html.escape(b.empty.strip('_'))}</p>")
                    continue
                head = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(format_cell(v))}</td>"
                                                for v in r) + "</tr>" for r in b.rows)
                body.append(f"<table><tr>{head}</tr>{rows}</table>")
            elif isinstance(b, Interactive):
                body.append(f'<div class="ap-plot" id="plot-{html.escape(b.spec["axis"])}">'
                            f'<script type="application/json">{spec_json(b.spec)}</script>'
                            f'<div class="ap-legend"></div><div class="ap-canvas">'
                            f'<div class="ap-tip"></div></div>'
                            f'<pre class="ap-policy">Click a point to see its policy.</pre>'
                            f'</div>')
            else:
                data = base64.b64encode(b.path.read_bytes()).decode()
                name = html.escape(b.path.name)
                body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{name}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
                 "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                 "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
                 "figure{margin:1.5em 0}")
        interactive = any(isinstance(b, Interactive) for b in self.blocks)
        if interactive:
            style += STYLE
            body.append(f"<script>{SCRIPT}</script>")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>"
                f"{html.escape(self.title)}</title><style>{style}</style></head><body>"
                f"{''.join(body)}</body></html>")
