"""Where the [MASK]s are in typed text: the placeholder people type, its replacement by the
model's own mask token, and runs of adjacent masks that stand for one word. Pure text."""

from __future__ import annotations

import re

MASK_PLACEHOLDER = "[MASK]"  # what people type, whatever the model's own mask token is


def placeholder_pattern(mask_token: str) -> re.Pattern:
    # The model's own token (e.g. "<mask>") is accepted too, so pasted RoBERTa examples work.
    return re.compile(re.escape(MASK_PLACEHOLDER) + "|" + re.escape(mask_token), re.IGNORECASE)


def to_model_text(text: str, mask_token: str) -> tuple[str, list[tuple[int, int, int, int]]]:
    parts, replacements, last, shift = [], [], 0, 0
    for m in placeholder_pattern(mask_token).finditer(text):
        parts += [text[last : m.start()], mask_token]
        m0 = m.start() + shift
        replacements.append((m.start(), m.end(), m0, m0 + len(mask_token)))
        shift += len(mask_token) - (m.end() - m.start())
        last = m.end()
    parts.append(text[last:])
    return "".join(parts), replacements


def mask_groups(replacements) -> list[list[int]]:
    """Indices of placeholders grouped into runs that touch (no character between them)."""
    groups: list[list[int]] = []
    for i, (start, _, _, _) in enumerate(replacements):
        if groups and replacements[groups[-1][-1]][1] == start:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
