"""One self-contained HTML report of an evaluation: images embedded, works offline, no server.

Each photo has a row of numbers and, under it, its 1:1 crops around the densest streaks: the
input, every model's output and, for paired folders, the clean image. Clicking a column's
header sorts the photos by it. The crops are embedded as JPEG (quality :data:`JPEG_QUALITY`),
so a report of the 21 real photos with two models stays a few MB.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from .._version import __version__

__all__ = ["JPEG_QUALITY", "Column", "ReportRow", "render_report"]

JPEG_QUALITY = 92


@dataclass(frozen=True)
class Column:
    """A numeric column: its heading, and how many decimals it shows."""

    title: str
    decimals: int = 3


@dataclass
class ReportRow:
    """One photo: its name, its numbers (by column title) and its labelled 1:1 crops."""

    name: str
    values: dict[str, float | None]
    crops: list[tuple[str, Image.Image]] = field(default_factory=list)


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value: float | None, decimals: int) -> str:
    if value is None:
        return '<td data-value="">–</td>'
    return f'<td data-value="{value!r}">{value:.{decimals}f}</td>'


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; cursor: pointer; user-select: none; white-space: nowrap; }
th.sorted-asc::after { content: " ▲"; } th.sorted-desc::after { content: " ▼"; }
td.name { text-align: left; font-weight: 600; }
tr.crops td { text-align: left; border-top: none; padding-bottom: 12px; }
.strip { display: flex; gap: 6px; overflow-x: auto; max-width: 95vw; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
img { display: block; image-rendering: auto; }
.note { color: #555; }
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th[data-col]').forEach(function (th) {
    th.addEventListener('click', function () {
      var col = +th.dataset.col;
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) {
        h.classList.remove('sorted-asc', 'sorted-desc');
      });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      var groups = Array.prototype.slice.call(table.tBodies);
      groups.sort(function (a, b) {
        var x = a.rows[0].cells[col].dataset.value, y = b.rows[0].cells[col].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
        return asc ? c : -c;
      });
      groups.forEach(function (g) { table.appendChild(g); });
    });
  });
});
"""


def render_report(
    title: str,
    summary_rows: Sequence[Sequence[str]],
    summary_header: Sequence[str],
    columns: Sequence[Column],
    rows: Sequence[ReportRow],
    notes: Sequence[str] = (),
) -> str:
    """The whole HTML document.

    Args:
        title: the page's heading.
        summary_header, summary_rows: a small table above the photos (one row per model).
        columns: the numeric columns of the photo table, in order (short titles: the crops
            span the table's width).
        rows: the photos, in the order they are first shown.
        notes: lines shown under the summary (comparisons, how to read the numbers).
    """
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in summary_header)
    summary = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in summary_rows
    )
    heads = ['<th data-col="0">photo</th>']
    heads += [f'<th data-col="{i + 1}">{esc(c.title)}</th>' for i, c in enumerate(columns)]
    body = []
    for row in rows:  # one <tbody> per photo: its numbers, then its crops across the table
        cells = [f'<td class="name" data-value="{esc(row.name)}">{esc(row.name)}</td>']
        cells += [_cell(row.values.get(c.title), c.decimals) for c in columns]
        figures = "".join(
            f'<figure><img src="{_data_uri(crop)}" width="{crop.width}" height="{crop.height}"'
            f' alt="{esc(label)}"><figcaption>{esc(label)}</figcaption></figure>'
            for label, crop in row.crops
        )
        strip = (
            f'<tr class="crops"><td colspan="{len(columns) + 1}">'
            f'<div class="strip">{figures}</div></td></tr>'
        )
        body.append("<tbody><tr>" + "".join(cells) + "</tr>" + strip + "</tbody>")
    note_html = "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{summary}</tbody></table>'
        f"{note_html}"
        f'<table class="sortable photos"><thead><tr>{"".join(heads)}</tr></thead>'
        f"{''.join(body)}</table>"
        f'<p class="note">Made by derain {esc(__version__)}. Click a heading to sort.</p>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
