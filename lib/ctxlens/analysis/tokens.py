"""Readable display forms of sub-word tokens.

WordPiece's "##" stays (students should see continuation pieces). Byte-level BPE's byte
alphabet ("Ġ" for a space, "Ċ" for a newline) is decoded back to text, and a leading space
is shown as a visible space sign, as is SentencePiece's "▁".
"""

from __future__ import annotations

from functools import lru_cache

SPACE_SIGN = "␣"
_VISIBLE = str.maketrans({" ": SPACE_SIGN, "\n": "⏎", "\t": "⇥", "\r": "␍"})


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = (getattr(backend, "pre_tokenizer", None), getattr(backend, "decoder", None))
    return any("ByteLevel" in repr(part) for part in parts if part is not None)


def decode_byte_level(raw: str) -> str:
    table = _byte_decoder()
    if not all(ch in table for ch in raw):
        return raw  # special tokens such as <|endoftext|> are not byte-encoded
    data = bytes(table[ch] for ch in raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # a piece of a multi-byte character (emoji, CJK): show its bytes
        return "".join(f"<0x{b:02X}>" if b >= 0x80 else chr(b) for b in data)


def make_visible(text: str) -> str:
    """Whitespace shown as signs, so "␣Paris" and "Paris" read as different tokens."""
    return text.translate(_VISIBLE)


def display_tokens(raw_tokens: list[str], tokenizer, special_mask) -> tuple[str, ...]:
    """Tokens as a page shows them: bytes decoded, whitespace made visible, specials as they are."""
    if is_byte_level(tokenizer):
        return tuple(raw if special else decode_byte_level(raw).translate(_VISIBLE)
                     for raw, special in zip(raw_tokens, special_mask))
    return tuple(raw if special else raw.replace("▁", " ").translate(_VISIBLE)
                 for raw, special in zip(raw_tokens, special_mask))
