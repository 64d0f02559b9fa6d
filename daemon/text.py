"""Strings from outside (hostnames, device names, bundle fields, torch's error text, paths) as data.

Each output format has its own way to turn data into instructions: a terminal
obeys escape sequences (a hostname can set the window title or clear the
screen), rich reads `[bold]` as markup, matplotlib reads `$...$` as mathtext,
a spreadsheet runs a CSV cell that starts with `=`, markdown reads `|` as a
column and `<` as HTML. Every string from outside goes through the function
for the format it is written to, at the point it is written; nothing here is
applied twice. Invalid UTF-8 (a hostname set by a careless tool) is replaced
with U+FFFD where it first enters, by `from_outside`.
"""

from __future__ import annotations

import html
import re

# C0 controls but tab and newline, DEL, and C1 controls (U+0080-U+009F: 8-bit CSI and OSC introducers).
_TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile("[\t\n]")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def from_outside(text: str) -> str:
    """A string as decoded by the OS (surrogate escapes for bytes that are not UTF-8) as valid Unicode:
    each undecodable byte becomes U+FFFD, so it can be encoded anywhere, /metrics included."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal(text: str, *, multiline: bool = False) -> str:
    """For a terminal: control characters shown as `\\x1b` and the like, never sent. A one-line field
    (a table cell, a name) shows tabs and newlines that way too; `multiline` keeps them (a log's tail)."""
    text = from_outside(text)
    if not multiline:
        text = _LINE_BREAKS.sub(_visible, text)
    return _TERMINAL_CONTROL.sub(_visible, text)


def csv_cell(value: object) -> object:
    """A spreadsheet formula is text, not a formula: a leading `'`, as OWASP advises for CSV injection.
    Control characters are shown as for a terminal, where CSV on stdout often lands."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_STARTS):
        value = "'" + value
    return terminal(value)


def html_text(text: str) -> str:
    """For an HTML page: escaped, its control characters shown (a page's source is read in terminals)."""
    return html.escape(terminal(text, multiline=True))


def markdown_cell(text: str) -> str:
    """One table cell: HTML escaped, `|` escaped, line breaks as <br> (the only HTML it then holds)."""
    escaped = html.escape(terminal(text, multiline=True), quote=False).replace("|", "\\|")
    return escaped.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def mathtext(text: str) -> str:
    """For matplotlib: `$` escaped, so no label is ever parsed as mathtext."""
    return terminal(text).replace("$", r"\$")
