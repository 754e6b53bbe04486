"""Few-shot prompts: the presets, and prompts with 0, 1, … demonstrations. Pure text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

_PRESETS_FILE = Path(__file__).resolve().parent.parent / "data" / "few_shot_presets.json"


@dataclass(frozen=True)
class FewShotPrompt:
    shots: int
    prompt: str
    answer: str  # the expected continuation, with its leading space


def few_shot_presets() -> dict[str, dict]:
    return json.loads(_PRESETS_FILE.read_text(encoding="utf-8"))


def few_shot_prompts(preset: str | dict, shots: Sequence[int] | None = None) -> list[FewShotPrompt]:
    """Prompts with 0, 1, … demonstrations (default: 0, 1 and all of them).

    Layout: the instruction, a blank line, then each demonstration as
    "<input_prefix><input>\\n<output_prefix> <output>" separated by blank lines, then the
    query ending in "<output_prefix>"; the answer follows it after a space.
    """
    p = few_shot_presets()[preset] if isinstance(preset, str) else preset
    demos = p["demonstrations"]
    shots = (0, 1, len(demos)) if shots is None else tuple(shots)
    if any(not 0 <= s <= len(demos) for s in shots):
        raise InputError(f"Shots must be between 0 and {len(demos)} for this preset.")
    return [
        FewShotPrompt(s, _prompt(p, demos[:s]), " " + p["answer"])
        for s in dict.fromkeys(shots)
    ]


def _prompt(p: dict, demos: list) -> str:
    blocks = [p["instruction"]]
    blocks += [f"{p['input_prefix']}{x}\n{p['output_prefix']} {y}" for x, y in demos]
    blocks.append(f"{p['input_prefix']}{p['query']}\n{p['output_prefix']}")
    return "\n\n".join(blocks)
