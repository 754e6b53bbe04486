"""Checks on what a person types, with messages written for them."""

from __future__ import annotations

import re

from .errors import InputError

# Unicode's control characters (Cc) and lone surrogates (Cs), newline and tab excepted.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_CHARS = 100_000  # beyond this a paste is almost surely a mistake; models truncate anyway


def clean_text(text: str | None, what: str = "text") -> str:
    """The text with control characters (other than newline and tab) removed.

    Raises InputError for empty, whitespace-only or absurdly long input.
    """
    if text is None or not str(text).strip():
        raise InputError(f"The {what} is empty: type a sentence first.")
    text = str(text)
    if len(text) > MAX_CHARS:
        raise InputError(
            f"The {what} has {len(text):,} characters; the limit is {MAX_CHARS:,}. "
            "Paste a shorter passage."
        )
    cleaned = _CONTROL.sub("", text)
    if not cleaned.strip():
        raise InputError(f"The {what} has only control characters: type a sentence.")
    return cleaned
