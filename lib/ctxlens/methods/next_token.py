"""Causal LMs: the next token after a text, and generation piece by piece."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..analysis.sampling import sampling_probs, surprisal
from ..backends.hf import LoadedModel, analyze
from ..errors import InputError
from ..models import catalog as cat
from ..record import Analysis
from ..validate import clean_text
from .common import Filler, check_top_k, top_fillers
from .registry import check, register


@dataclass(frozen=True)
class NextTokens:
    record: Analysis
    candidates: tuple[Filler, ...]  # the most probable next tokens after the whole text


def next_tokens(lm: LoadedModel, text: str, top_k: int = 10) -> NextTokens:
    check("next-token", lm.spec)
    check_top_k(top_k)
    record = analyze(lm, text)
    probs = torch.softmax(torch.from_numpy(record.head.logits[-1]).float(), -1)
    return NextTokens(record, top_fillers(lm, probs, top_k))


def generate_stream(
    lm: LoadedModel, prompt: str, max_new_tokens: int = 40, temperature: float = 0.7,
    top_k: int = 50, top_p: float = 0.95, seed: int = 0,
) -> Iterator[str]:
    """Yield the continuation of `prompt` piece by piece as it is sampled.

    One forward pass per token with the KV cache (past_key_values); sampling runs on the
    CPU with a seeded torch.Generator, so the same seed gives the same text on any device
    (up to the device's arithmetic). Stops at max_new_tokens, an end-of-sequence token, or
    the model's context limit. Settings are checked here, before the first piece is asked for.
    """
    check("generation", lm.spec)
    if max_new_tokens < 1:
        raise InputError("Generate at least one token.")
    sampling_probs(torch.zeros(1), temperature, top_k, top_p)  # validates the settings
    prompt_ids = lm.tokenizer(clean_text(prompt, "prompt"))["input_ids"]
    if len(prompt_ids) >= lm.max_tokens:
        raise InputError(
            f"The prompt has {len(prompt_ids)} tokens; this model reads at most {lm.max_tokens}."
        )
    budget = min(max_new_tokens, lm.max_tokens - len(prompt_ids))
    return _stream(lm, prompt_ids, budget, (temperature, top_k, top_p), int(seed))


def _stream(lm: LoadedModel, prompt_ids: list[int], budget: int, settings: tuple, seed: int) -> Iterator[str]:
    gen = torch.Generator().manual_seed(seed)
    stops = _eos_ids(lm)
    base = lm.tokenizer.decode(prompt_ids, skip_special_tokens=True)
    new_ids: list[int] = []
    emitted = ""
    past, step_input = None, torch.tensor([prompt_ids], device=lm.device)
    for _ in range(budget):
        with torch.inference_mode():
            out = lm.model(input_ids=step_input, past_key_values=past, use_cache=True, return_dict=True)
        past = out.past_key_values
        probs = sampling_probs(out.logits[0, -1], *settings)
        next_id = int(torch.multinomial(probs, 1, generator=gen)) if settings[0] else int(probs.argmax())
        if next_id in stops:
            break
        new_ids.append(next_id)
        text = _continuation(lm.tokenizer, base, prompt_ids, new_ids)
        if not text.endswith("\ufffd"):  # hold back half of a multi-byte character
            yield text[len(emitted):]
            emitted = text
        step_input = torch.tensor([[next_id]], device=lm.device)
    text = _continuation(lm.tokenizer, base, prompt_ids, new_ids)
    if len(text) > len(emitted):
        yield text[len(emitted):]


def _eos_ids(lm: LoadedModel) -> set[int]:
    ids = {lm.tokenizer.eos_token_id}
    configured = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {int(i) for i in ids if i is not None}


def _continuation(tokenizer, base: str, prompt_ids: list[int], new_ids: list[int]) -> str:
    # Decoding with the prompt keeps leading spaces SentencePiece drops at a text's start.
    full = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    return full[len(base):] if full.startswith(base) else tokenizer.decode(new_ids, skip_special_tokens=True)


register("next-token", "Next token", "the most probable next tokens after the text", [cat.NEXT_TOKEN], next_tokens,
         top_k=10)
register("surprisal", "Surprisal", "−log2 p(token | tokens before it), for every token", [cat.NEXT_TOKEN], surprisal)
register("generation", "Generation", "a continuation sampled token by token (temperature, top-k, top-p, seed)",
         [cat.NEXT_TOKEN], generate_stream, max_new_tokens=40, temperature=0.7, top_k=50, top_p=0.95, seed=0)
