"""Text from outside made safe to show: known secrets redacted, control and bidirectional characters escaped.

`safe_text` is what every line printed or logged, and every cell of the report, passes
through when it may hold text that came from the network (`error_code`, `error_msg`, image
fields, project names from IAM). The stored history keeps values as sent, except
`project_runs.error_msg`, which is stored as `safe_text` gives it.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Optional, Tuple

REDACTED = "******"
"""What a known secret value is replaced with."""

UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
    "\u061c\u200e\u200f"  # bidirectional marks
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e\u2066-\u2069"  # bidirectional embeddings, overrides and isolates
    "\ud800-\udfff]"  # lone surrogates (no terminal, file or page can take them)
)
"""Characters that can start a new line, move the cursor, reorder or hide text where it is shown."""

_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}

_secrets: Tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def escape_controls(text: str) -> str:
    """`text` with each character of UNSAFE_CHARS written as an escape: `\\r`, `\\n`, `\\t`,
    `\\x1b` (other C0, DEL and C1 alike), `\\u202e` (the others alike).

    A backslash is kept as it is, so escaping twice gives the same text as escaping once.
    """
    return UNSAFE_CHARS.sub(_escape, text)


def add_secrets(*values: Optional[str]) -> None:
    """Remember values that `redact` replaces, for the life of the process: the credentials of
    every account and the IAM tokens issued to them. Empty values are ignored.

    Each is remembered as written and as it appears inside a JSON string (an echoed request body).
    """
    global _secrets
    forms: set[str] = set()
    for value in values:
        text = "" if value is None else str(value)
        if text.strip():
            forms.update((text, json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1]))
    if not forms:
        return
    with _secrets_lock:
        # the longest first, so that a secret holding another is replaced whole
        _secrets = tuple(sorted(forms.union(_secrets), key=lambda s: (-len(s), s)))


def redact(text: str) -> str:
    """`text` with every value given to `add_secrets` replaced by REDACTED."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def safe_text(value: object) -> str:
    """`value` as text fit to print, log or show: known secrets redacted, then control and
    bidirectional characters escaped (`escape_controls`). Idempotent."""
    return escape_controls(redact(str(value)))
