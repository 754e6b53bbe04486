"""Few-shot prompting: how P(answer) changes with the number of demonstrations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..analysis.few_shot import few_shot_prompts
from ..backends.hf import LoadedModel
from ..errors import InputError
from ..models import catalog as cat
from ..validate import clean_text
from .common import display_ids, vocab_logits
from .registry import check, register


@dataclass(frozen=True)
class AnswerScore:
    prob: float  # product of the answer's token probabilities (teacher forcing)
    tokens: tuple[str, ...]
    token_probs: tuple[float, ...]


def answer_probability(lm: LoadedModel, prompt: str, answer: str) -> AnswerScore:
    """P(answer | prompt): the answer is tokenised on its own (keep its leading space) and
    appended to the prompt's tokens, as the model would generate it; one forward pass
    reads each answer token's probability given the prompt and the answer tokens before it."""
    check("few-shot", lm.spec)
    prompt = clean_text(prompt, "prompt")
    if not answer:
        raise InputError("The answer is empty.")
    p_ids = lm.tokenizer(prompt)["input_ids"]
    a_ids = lm.tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(p_ids) + len(a_ids) > lm.max_tokens:
        raise InputError(f"Prompt and answer exceed this model's {lm.max_tokens}-token limit.")
    logits = vocab_logits(lm, torch.tensor([p_ids + a_ids]))[0]
    logp = torch.log_softmax(logits[len(p_ids) - 1 : -1], -1).cpu()
    token_logp = logp.gather(1, torch.tensor(a_ids)[:, None])[:, 0]
    return AnswerScore(
        float(token_logp.sum().exp()), display_ids(lm, a_ids), tuple(token_logp.exp().tolist())
    )


def few_shot_curve(lm: LoadedModel, preset: str | dict, shots: Sequence[int] | None = None):
    """[(prompt, score)] for each number of shots: how demonstrations change P(answer)."""
    return [(fp, answer_probability(lm, fp.prompt, fp.answer)) for fp in few_shot_prompts(preset, shots)]


register("few-shot", "Few-shot prompting", "how P(answer) changes with 0, 1, … demonstrations in the prompt",
         [cat.NEXT_TOKEN], few_shot_curve)
