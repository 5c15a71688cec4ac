"""Contact sheets for review: ``contact.html`` (a labelled grid linking each output) and
``contact.png`` (the same grid as one image), rows by prompt × segment, columns by style × seed."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

THUMB = 192


def _grid(items: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[tuple[str, int]], dict]:
    rows = list(dict.fromkeys((e["prompt"], e["segment"]) for e in items))
    cols = list(dict.fromkeys((e["style"], e["seed"]) for e in items))
    cells: dict[tuple[tuple[str, str], tuple[str, int]], list[dict[str, Any]]] = {}
    for e in items:
        cells.setdefault(((e["prompt"], e["segment"]), (e["style"], e["seed"])), []).append(e)
    return rows, cols, cells


def write_contact_sheets(out: Path, items: list[dict[str, Any]], title: str) -> tuple[Path, Path]:
    rows, cols, cells = _grid(items)
    return _html(out, rows, cols, cells, title), _png(out, rows, cols, cells)


def _html(out: Path, rows: list, cols: list, cells: dict, title: str) -> Path:
    e = html.escape
    head = "".join(f"<th>{e(style)}<br>seed {seed}</th>" for style, seed in cols)
    body = []
    for prompt, segment in rows:
        tds = []
        for col in cols:
            for entry in cells.get(((prompt, segment), col), []) or [None]:
                if entry is None:
                    tds.append("<td></td>")
                    continue
                label = f"{entry['width']}×{entry['height']}"
                tds.append(
                    f'<td><a href="{e(entry["file"])}"><img src="{e(entry["file"])}" width="{THUMB}" '
                    f'alt="{e(entry["full_prompt"])}"></a><br><small>{label} · {e(entry["key"])}</small></td>'
                )
        body.append(
            f"<tr><th>{e(prompt)}<br><small>{e(segment or 'all')}</small></th>{''.join(tds)}</tr>"
        )
    page = (
        f"<!doctype html><meta charset=utf-8><title>{e(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:6px;vertical-align:top;text-align:center}"
        "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style>"
        f"<h1>{e(title)}</h1><p>{sum(len(v) for v in cells.values())} outputs</p>"
        f"<table><tr><th>prompt / segment</th>{head}</tr>{''.join(body)}</table>"
    )
    path = out / "contact.html"
    path.write_text(page, encoding="utf-8")
    return path


def _png(out: Path, rows: list, cols: list, cells: dict) -> Path:
    from PIL import Image, ImageDraw

    label_w, label_h, pad = 220, 28, 6
    per_cell = max((len(v) for v in cells.values()), default=1)
    cell_w = THUMB * per_cell + pad
    sheet = Image.new(
        "RGB", (label_w + cell_w * len(cols), label_h + (THUMB + label_h) * len(rows)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for c, (style, seed) in enumerate(cols):
        draw.text((label_w + c * cell_w + pad, 8), f"{style} · seed {seed}", fill="black")
    for r, (prompt, segment) in enumerate(rows):
        y = label_h + r * (THUMB + label_h)
        draw.text((pad, y + 8), prompt[:34], fill="black")
        draw.text((pad, y + 24), segment or "all", fill="gray")
        for c, col in enumerate(cols):
            for k, entry in enumerate(cells.get(((prompt, segment), col), [])):
                with Image.open(out / entry["file"]) as im:
                    thumb = im.convert("RGB")
                    thumb.thumbnail((THUMB, THUMB))
                x = label_w + c * cell_w + k * THUMB
                sheet.paste(thumb, (x, y))
                draw.text(
                    (x + 2, y + THUMB + 4), f"{entry['width']}x{entry['height']}", fill="black"
                )
    path = out / "contact.png"
    sheet.save(path)
    return path
