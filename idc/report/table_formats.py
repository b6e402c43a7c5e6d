"""The three formats of a result table, drawn from its `TableLayout`: Markdown (best **bold**,
second _italic_), LaTeX with booktabs (\\textbf / \\underline) and a self-contained HTML page
(bold / underlined), the one `snakemake --report` shows.
"""

from __future__ import annotations

import html

from idc.report.table_layout import MISSING, TableLayout, provenance

# ---------------------------------------------------------------- Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(text: str, mark: str) -> str:
    if text == MISSING or not mark:
        return text
    return f"**{text}**" if mark == "best" else f"_{text}_"


def to_markdown(table: TableLayout) -> str:
    lines = [f"<!-- {provenance()} -->", f"**{_md_escape(table.title)}**", ""]
    for metric, block_columns in table.blocks():
        levels = table.header_levels(block_columns)
        # Markdown has one header row: join the levels of each column into one label.
        headers = []
        for i in range(len(block_columns)):
            parts = []
            for groups in levels:
                position = 0
                for text, span in groups:
                    if position <= i < position + span:
                        parts.append(text)
                    position += span
            headers.append(" ".join(parts))
        lines.append("| " + " | ".join([table.corner(metric), *map(_md_escape, headers)]) + " |")
        lines.append("| :-- | " + " | ".join(["--:"] * len(block_columns)) + " |")
        for row in table.rows:
            cells = [_md_cell(*table.cell(row, c)) for c in block_columns]
            lines.append("| " + " | ".join([_md_escape(row.label), *cells]) + " |")
        lines.append("")
    notes = []
    if table.mark == "best_second":
        notes.append("**bold**: best, _italic_: second best")
    elif table.mark == "best":
        notes.append("**bold**: best")
    if table.layout == "delta":
        notes.append("first row absolute, other rows difference to it")
    if any(r.is_reference for r in table.rows):
        notes.append("rows in [brackets]: published numbers, not ranked")
    if notes:
        lines.append("; ".join(notes) + ".")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- LaTeX

_TEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(ch, ch) for ch in text)


def _tex_cell(text: str, mark: str, signed: bool) -> str:
    if text == MISSING:
        return "--"
    if signed and text[0] in "+-":
        # Typeset the sign as a math sign, not a hyphen.
        text = f"${text[0]}${text[1:]}"
    if mark == "best":
        return rf"\textbf{{{text}}}"
    if mark == "second":
        return rf"\underline{{{text}}}"
    return text


def to_latex(table: TableLayout) -> str:
    n_columns = max(len(columns) for _, columns in table.blocks())
    lines = [
        f"% {provenance()}",
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(table.title)}}}",
    ]
    if table.label:
        lines.append(rf"\label{{{table.label}}}")
    lines += [rf"\begin{{tabular}}{{l{'c' * n_columns}}}", r"\toprule"]
    for b, (metric, block_columns) in enumerate(table.blocks()):
        if b:
            lines.append(r"\midrule")
        levels = table.header_levels(block_columns)
        for depth, groups in enumerate(levels):
            cells = [tex_escape(table.corner(metric)) if depth == 0 else ""]
            rules = []
            position = 2
            for text, span in groups:
                cells.append(
                    tex_escape(text)
                    if span == 1
                    else rf"\multicolumn{{{span}}}{{c}}{{{tex_escape(text)}}}"
                )
                if span > 1:
                    rules.append(rf"\cmidrule(lr){{{position}-{position + span - 1}}}")
                position += span
            cells += [""] * (n_columns - len(block_columns))
            lines.append(" & ".join(cells) + r" \\")
            if rules and depth < len(levels) - 1:
                lines.append(" ".join(rules))
        lines.append(r"\midrule")
        previous_reference = False
        for row in table.rows:
            if row.is_reference and not previous_reference:
                lines.append(r"\midrule")
            previous_reference = row.is_reference
            cells = [_tex_cell(*table.cell(row, c), table.signed[row.row_id]) for c in block_columns]
            cells += [""] * (n_columns - len(block_columns))
            lines.append(" & ".join([tex_escape(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML (a self-contained page)

_HTML_STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #bbb;padding:.25em .6em}td{text-align:right}"
    "td.label{text-align:left}.second{text-decoration:underline}"
)


def _html_cell(text: str, mark: str) -> str:
    body = html.escape(text)
    if text != MISSING and mark == "best":
        body = f"<b>{body}</b>"
    cls = ' class="second"' if text != MISSING and mark == "second" else ""
    return f"<td{cls}>{body}</td>"


def to_html(table: TableLayout) -> str:
    title = html.escape(table.title)
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{title}</title><style>{_HTML_STYLE}</style></head><body>',
        f"<!-- {html.escape(provenance())} -->",
        f"<h3>{title}</h3>",
    ]
    for metric, block_columns in table.blocks():
        levels = table.header_levels(block_columns)
        parts.append("<table><thead>")
        for depth, groups in enumerate(levels):
            corner = f'<th rowspan="{len(levels)}">{html.escape(table.corner(metric))}</th>'
            cells = [corner] if depth == 0 else []
            cells += [f'<th colspan="{span}">{html.escape(text)}</th>' for text, span in groups]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</thead><tbody>")
        for row in table.rows:
            cells = "".join(_html_cell(*table.cell(row, c)) for c in block_columns)
            parts.append(f'<tr><td class="label">{html.escape(row.label)}</td>{cells}</tr>')
        parts.append("</tbody></table>")
    if table.mark in ("best_second", "best"):
        second = ", underlined: second best" if table.mark == "best_second" else ""
        parts.append(f"<p>bold: best{second}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
