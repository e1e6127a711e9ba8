"""Values read from records someone else may have written (``summary.json``, ``metrics.csv``, file names), made
inert before they reach a terminal or a file name (docs/reliability.md#files-from-someone-else).

:func:`terminal_text` is the one way a table printer shows such a value: control characters (terminal escape
sequences, carriage returns, bidirectional overrides) are shown as ``\\x1b``-style text and rich markup is
escaped, so a record can neither restyle the terminal nor crash the printer (``[/]``). :func:`file_stem` turns a
value into a name that stays inside the folder it is joined to.
"""

from __future__ import annotations

import re
import unicodedata

from rich.markup import escape

__all__ = ["terminal_text", "printable", "file_stem"]

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


def _visible(ch: str) -> str:
    if unicodedata.category(ch) in ("Cc", "Cf"):  # C0/C1 controls (ESC, CR, BEL), DEL, bidi overrides
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def printable(value, keep_newlines: bool = True) -> str:
    """``value`` as text for ``print``: control characters shown as ``\\x1b``-style text (newlines kept when
    ``keep_newlines``: a multi-line table stays one)."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if keep_newlines and c == "\n" else _visible(c) for c in text)


def terminal_text(value) -> str:
    """``value`` as text that a rich console prints literally: controls made visible, markup escaped."""
    return escape(printable(value, keep_newlines=False))


def file_stem(value, fallback: str = "unnamed", limit: int = 80) -> str:
    """``value`` as a file-name part: letters, digits and ``._+-`` kept, every other run of characters (path
    separators included) replaced by ``_``, no leading dot (``..`` stays in the folder), at most ``limit``
    characters; ``fallback`` when nothing is left."""
    stem = _UNSAFE_NAME.sub("_", "" if value is None else str(value)).lstrip(".")[:limit]
    return stem if stem.strip("_") else fallback
