"""A self-contained HTML report: one page, inline style, pictures by relative path.

The page needs nothing from the network: the CSS is inline and every picture is a PNG file in
the report's own folder (or below it), so the folder can be copied or zipped as a whole.
Everything given as text is HTML-escaped; the blocks built here are already HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from gnm.io import atomic_write_bytes

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
figure { display: inline-block; margin: 0.6em 1.2em 1em 0; vertical-align: top; }
figure img { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; }
figcaption { font-size: 0.9em; color: #444; max-width: 560px; }
.note { color: #555; font-size: 0.9em; }
"""


def esc(text: object) -> str:
    """``text`` as HTML-escaped string."""
    return html.escape(str(text))


def figure(folder: str | Path, src: str, caption: str, scale: float = 2.0,
           max_width: int = 1000) -> str:
    """An ``<figure>`` showing PNG ``folder/src`` (relative link ``src``) enlarged ``scale``
    times (at most ``max_width`` px wide, pixels kept sharp), with ``caption`` below it."""
    with Image.open(Path(folder) / src) as im:
        width = min(int(im.width * scale), max_width)
    return (f"<figure><img src='{esc(src)}' width='{width}' alt='{esc(caption)}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """An HTML table of text cells (escaped); ``header`` gives the column names."""
    head = ("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>") if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def section(title: str, *blocks: str, intro: str = "") -> str:
    """A titled section: ``<h2>``, an optional paragraph of text, then HTML ``blocks``."""
    para = f"<p>{esc(intro)}</p>" if intro else ""
    return f"<section><h2>{esc(title)}</h2>{para}{''.join(blocks)}</section>"


def page(title: str, blocks: Iterable[str], subtitle: str = "") -> str:
    """The whole document around HTML ``blocks``."""
    sub = f"<p class='note'>{esc(subtitle)}</p>" if subtitle else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1>{sub}{''.join(blocks)}</body></html>\n")


def write_page(path: str | Path, title: str, blocks: Iterable[str], subtitle: str = "") -> Path:
    """Write :func:`page` to ``path`` atomically; return ``path``."""
    path = Path(path)
    atomic_write_bytes(path, page(title, blocks, subtitle).encode("utf-8"))
    return path
