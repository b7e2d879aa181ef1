"""Text cleaning at the edges: what comes in from a client must be storable and serialisable.

JSON lets a client send a lone surrogate (``"\\ud800"``), which no UTF-8 encoder accepts, and a
NUL (``"\\u0000"``), which PostgreSQL text columns refuse. Either one, stored or echoed, breaks
the database write or the response, so both are cleaned before they go anywhere.
"""

from __future__ import annotations

import re

__all__ = ["clean_text"]

# A str decoded from JSON holds surrogate code points only when they were unpaired escapes.
_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 controls other than tab, newline and carriage return: NUL and friends carry no meaning in
# a question or a reason, and NUL cannot be stored in PostgreSQL.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD and C0 controls (but tab, newline and
    carriage return) removed; unchanged when there is nothing to clean."""
    text = _SURROGATES.sub("\ufffd", text)
    return _CONTROLS.sub("", text)
