"""What a "why" view explains: one number a trained head computes from a forward.

A `Target` names the head's output (a token at a position, a QA start or end, NSP, a class)
and, optionally, a contrast: "why *Paris* rather than *London*" explains the logit
difference, which equals the difference of the two log-probabilities (the softmax's
normaliser cancels). Without a contrast the number is the target's log-probability.
Attribution, ablation and the cross-check all score the same `Target` with `score`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..analysis.qa import span_scores
from ..errors import InputError
from ..models import catalog as cat
from ..record import CLASS_LOGITS, END_LOGITS, LOGITS, NSP_LOGITS, START_LOGITS, Analysis, Family
from .common import display_ids, require

TOKEN, QA_START, QA_END, QA_SPAN, NSP, SEQ_CLASS, TOKEN_CLASS = (
    "token", "qa-start", "qa-end", "qa-span", "nsp", "class", "token-class")
# A model with any of these trained heads has a target to explain (`registry.need` group).
EXPLAINABLE = frozenset({cat.MLM, cat.NEXT_TOKEN, cat.QA_SPANS, cat.NSP, cat.SEQ_CLASS, cat.TOKEN_CLASS})
HEAD_OF_KIND = {TOKEN: LOGITS, QA_START: START_LOGITS, QA_END: END_LOGITS, QA_SPAN: START_LOGITS,
                NSP: NSP_LOGITS, SEQ_CLASS: CLASS_LOGITS, TOKEN_CLASS: CLASS_LOGITS}


@dataclass(frozen=True)
class Target:
    kind: str  # TOKEN | QA_START | QA_END | QA_SPAN | NSP | SEQ_CLASS | TOKEN_CLASS
    label: str  # what a page calls it ("␣Paris", "answer span", "IsNext", a class name)
    index: int = 0  # vocabulary id (TOKEN) or class (NSP: 0 is IsNext; classifiers)
    position: int | None = None  # the token read: a mask, the last token, a QA start, a tagged token
    end: int | None = None  # QA_END / QA_SPAN: the span's last token
    contrast: int | None = None  # a second id or class: explain index minus contrast
    contrast_label: str | None = None
    multi_label: bool = False  # a classifier with one sigmoid per label
    # The token whose last hidden state the head reads: attention from it is what an
    # attention-based explanation looks at. None: `position`.
    reads: int | None = None

    @property
    def head(self) -> str:
        return HEAD_OF_KIND[self.kind]

    @property
    def reads_from(self) -> int:
        return self.reads if self.reads is not None else self.position

    @property
    def title(self) -> str:
        return self.label if self.contrast is None else f"{self.label} rather than {self.contrast_label}"

    @property
    def reads_one_token(self) -> bool:
        """Whether its number comes from the vocabulary logits at one token (then a forward
        may compute the head there only: `LoadedModel.heads(at=...)`)."""
        return self.kind == TOKEN

    def at_first(self) -> "Target":
        """The same target read from logits computed at its position only ([B, 1, V])."""
        return replace(self, position=0)

    def positions(self) -> tuple[int, ...]:
        return tuple(p for p in (self.position, self.end) if p is not None)

    def moved(self, kept: np.ndarray) -> "Target | None":
        """The same target in the input that keeps only the tokens where `kept` is True
        (positions shift left), or None when a token it reads was removed."""
        if any(not kept[p] for p in self.positions()):
            return None
        new = np.cumsum(kept) - 1
        return replace(self, position=None if self.position is None else int(new[self.position]),
                       end=None if self.end is None else int(new[self.end]))


def score(outputs: dict[str, torch.Tensor], targets: list[Target], lengths: list[int]) -> torch.Tensor:
    """[B] float32: each row's number for its target, from the heads' batched outputs
    (`LoadedModel.heads`). lengths: each row's real tokens (rows are padded on the right)."""
    return torch.stack([_one(outputs, r, t, n) for r, (t, n) in enumerate(zip(targets, lengths))])


def _float(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t  # float64 stays (tests)


def _one(outputs: dict, row: int, t: Target, n: int) -> torch.Tensor:
    head = _float(outputs[t.head][row])
    if t.kind == TOKEN or t.kind == TOKEN_CLASS:
        return _pick(head[t.position], t)
    if t.kind in (NSP, SEQ_CLASS):
        return _pick(head, t)
    start = torch.log_softmax(_float(outputs[START_LOGITS][row, :n]), -1)
    end = torch.log_softmax(_float(outputs[END_LOGITS][row, :n]), -1)
    if t.kind == QA_START:
        return start[t.position]
    if t.kind == QA_END:
        return end[t.end]
    return start[t.position] + end[t.end]


def _pick(logits: torch.Tensor, t: Target) -> torch.Tensor:
    if t.contrast is not None:
        return logits[t.index] - logits[t.contrast]
    if t.multi_label:
        return torch.nn.functional.logsigmoid(logits[t.index])
    return torch.log_softmax(logits, -1)[t.index]


# --- building targets from a record ------------------------------------------------------------


def token_id(lm, text: str) -> int:
    """The vocabulary id of one token typed as text: for a GPT-style model the word as it
    follows a space (" Paris") when that is one token, else as typed."""
    tok = lm.tokenizer
    typed = text.strip()
    if not typed:
        raise InputError("Type the token to explain (for example: Paris).")
    tries = ([" " + typed] if lm.spec.family is Family.CAUSAL_LM else []) + [typed]
    for form in tries:
        ids = tok(form, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            return int(ids[0])
    pieces = " + ".join(display_ids(lm, tok(tries[0], add_special_tokens=False)["input_ids"]))
    raise InputError(f"'{typed}' is not one token in {lm.spec.key}'s vocabulary (it reads {pieces}); "
                     "explain one token at a time, such as its first piece.")


def prediction_target(lm, record: Analysis, token: str | None = None, contrast: str | None = None,
                      position: int | None = None) -> Target:
    """The token predicted at a mask (BERT-style; the first mask unless `position`) or after
    the text (GPT-style). token None: the model's own top prediction there."""
    if lm.spec.family is Family.CAUSAL_LM:
        require(lm, cat.NEXT_TOKEN)
        position = record.n_tokens - 1 if position is None else position
    else:
        require(lm, cat.MLM)
        masks = np.flatnonzero(record.token_ids == lm.tokenizer.mask_token_id)
        if not masks.size:
            raise InputError(f"Type {lm.tokenizer.mask_token} (or [MASK]) where {lm.spec.key} should fill in a word.")
        position = int(masks[0]) if position is None else position
    logits = record.acts.numpy(LOGITS, index=(position,))
    index = int(np.argmax(logits)) if token is None else token_id(lm, token)
    other = None if contrast is None or not contrast.strip() else token_id(lm, contrast)
    if other == index:
        raise InputError("The contrast is the target itself: pick another token to compare with.")
    label = lambda i: display_ids(lm, [i])[0]  # noqa: E731
    return Target(TOKEN, label(index), index, position, contrast=other,
                  contrast_label=None if other is None else label(other))


def qa_target(record: Analysis, part: str = QA_SPAN, max_answer_len: int = 30,
              span: tuple[int, int] | None = None) -> Target:
    """The QA head's start, end or whole span (default: its best span in the context)."""
    if span is None:
        start, end = record.acts.numpy(START_LOGITS), record.acts.numpy(END_LOGITS)
        context = (record.segment_ids == 1) & ~record.special_mask
        if not context.any():
            raise InputError("Give a context: the answer is a span of it.")
        scores = span_scores(start, end, context, max_answer_len)
        s, e = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
        span = int(s), int(e)
    labels = {QA_START: "answer start", QA_END: "answer end", QA_SPAN: "answer span"}
    return Target(part, labels[part], position=span[0], end=span[1])


def nsp_target(is_next: bool = True) -> Target:
    """BERT's next-sentence head, which reads [CLS] (through the pooler)."""
    return Target(NSP, "IsNext" if is_next else "NotNext", 0 if is_next else 1, reads=0)


def class_target(lm, record: Analysis, label: int | None = None, contrast: int | None = None,
                 position: int | None = None) -> Target:
    """A classifier's label (default: its top label); a token classifier's at token `position`.
    A sentence classifier reads [CLS] in an encoder and the last token in a decoder."""
    config = lm.model.config
    logits = record.acts.numpy(CLASS_LOGITS)
    logits = logits if position is None else logits[position]
    label = int(np.argmax(logits)) if label is None else int(label)
    for i in (label, contrast):
        if i is not None and not 0 <= i < len(logits):
            raise InputError(f"{lm.spec.key} has labels 0 to {len(logits) - 1}; there is no label {i}.")
    name = lambda i: str(config.id2label.get(i, f"LABEL_{i}"))  # noqa: E731
    multi = getattr(config, "problem_type", None) == "multi_label_classification"
    if position is not None:
        return Target(TOKEN_CLASS, name(label), label, position, contrast=contrast,
                      contrast_label=None if contrast is None else name(contrast), multi_label=multi)
    reads = record.n_tokens - 1 if lm.spec.family is Family.CAUSAL_LM else 0
    return Target(SEQ_CLASS, name(label), label, contrast=contrast,
                  contrast_label=None if contrast is None else name(contrast), multi_label=multi, reads=reads)
