"""Predict-then-reveal exercises: a question about a sentence, answered by the student first,
then by the model, with the model's own numbers.

Each exercise names the page it belongs to and the embedded model it runs (available offline),
and `pose(lm, text)` computes the question's choices and the model's answer with the library's
methods: nothing is scripted, so the reveal is what the model does on this machine. Those that
read one sentence ask about the page's sentence (`text`), or about their example without one;
the others ask about a prepared set of sentences.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.polysemy import collect_target_vectors, load_presets, separation_by_layer
from ..analysis.sampling import surprisal
from ..backends.hf import analyze
from ..errors import InputError
from . import attention as attention_methods
from .attribution import occlusion, subject
from .next_token import next_tokens
from .targets import prediction_target

MINILM, SMOLLM, ELMO = "all-MiniLM-L6-v2", "SmolLM2-135M-Instruct", "elmo-tiny-test"
OPENING_WORDS = 3  # the surprise exercise leaves out a sentence's first words (no context yet)


@dataclass(frozen=True)
class Posed:
    question: str
    choices: tuple[str, ...]
    answer: int  # index of the model's answer among the choices
    explanation: str  # one line: why, in the model's numbers
    detail: pd.DataFrame | None = None  # what the reveal shows under the explanation


@dataclass(frozen=True)
class Exercise:
    key: str  # stable: links carry it
    page: str  # the page it sits on
    model: str  # an embedded model, available offline
    pose: Callable[[object, str], Posed]  # (model, sentence) -> the question and the model's answer
    example: str | None = None  # the sentence asked about when the page has none; None: reads no sentence

    def ask(self, lm, text: str | None = None) -> Posed:
        """The exercise on `text` (the sentence in view), or on its example."""
        return self.pose(lm, (text or "").strip() or self.example)


def _choices(correct: str, others: list[str], seed: str, n: int = 4) -> tuple[tuple[str, ...], int]:
    """`correct` among up to n − 1 of `others`, in an order fixed by `seed` (the same for the
    whole class, different per exercise)."""
    pool = [correct] + [o for o in dict.fromkeys(others) if o != correct][: n - 1]
    order = np.random.default_rng(sum(map(ord, seed))).permutation(len(pool))
    shuffled = tuple(pool[i] for i in order)
    return shuffled, shuffled.index(correct)


def next_word(lm, text: str) -> Posed:
    cands = next_tokens(lm, text, top_k=6).candidates
    shown = [c.text.replace("␣", "").strip() or c.text for c in cands]
    choices, answer = _choices(shown[0], shown[1:], "next-word")
    if len(choices) < 2:  # the top tokens differ only in spaces: nothing to choose between
        raise InputError("The model's top next tokens are the same word here: try another sentence.")
    table = pd.DataFrame({"next token": [c.text for c in cands], "probability": [round(c.prob, 3) for c in cands]})
    return Posed(f"Which word will {lm.spec.key} put after “{text}”?", choices, answer,
                 f"Its top token is “{cands[0].text}” with probability {cands[0].prob:.0%}.", table)


def most_surprising(lm, text: str) -> Posed:
    record = analyze(lm, text)
    bits = surprisal(record).bits
    # Words after the first three: the first words of any text are surprising for want of context.
    opening = " ".join(w.text for w in record.words[:OPENING_WORDS])
    later = [i for i, w in enumerate(record.words) if i >= OPENING_WORDS and w.text.isalpha()]
    per_word = {record.words[i].text: float(np.nansum(bits[record.word_tokens(i)])) for i in later}
    if len(per_word) < 2:
        raise InputError(f"This exercise needs a sentence of at least {OPENING_WORDS + 2} words.")
    best = max(per_word, key=per_word.get)
    choices, answer = _choices(best, sorted(per_word, key=per_word.get, reverse=True)[1:], "surprise")
    table = pd.DataFrame({"word": list(per_word), "surprisal (bits)": [round(v, 1) for v in per_word.values()]})
    return Posed(f"In “{text}”, which word after “{opening}” surprises {lm.spec.key} most?", choices, answer,
                 f"“{best}” costs {per_word[best]:.1f} bits: about 1 chance in {2 ** per_word[best]:,.0f}.", table)


def word_that_matters(lm, _text=None) -> Posed:
    text = "The capital of France is"  # the question is Paris against London: always this sentence
    subj = subject(lm, text)
    target = prediction_target(lm, subj.record, "Paris", "London")
    result = occlusion(lm, subj, target)
    scores = {w: float(s) for w, s in zip(result.words, result.word_scores) if not math.isnan(s)}
    best = max(scores, key=scores.get)
    choices, answer = _choices(best, list(scores), "why-word")
    table = pd.DataFrame({"word removed": list(scores), "Paris vs London drops by": [round(v, 2) for v in scores.values()]})
    return Posed(f"{lm.spec.key} says “Paris” after “{text}”. Which word, taken out, costs Paris most "
                 "against London?", choices, answer,
                 f"Without “{best}”, the log-odds of Paris over London fall by {scores[best]:.2f}.", table)


def previous_token_head(lm, text: str) -> Posed:
    record = analyze(lm, text)
    prev = attention_methods.head_statistics(record)["prev"]  # [L, H] share on the previous token
    heads = [tuple(map(int, np.unravel_index(int(i), prev.shape))) for i in np.argsort(-prev, axis=None)]
    label = {h: f"layer {h[0]}, head {h[1]}" for h in heads}
    # The top head, and distractors spread over the rest of the ranking (so they clearly differ).
    picked = [heads[0]] + heads[len(heads) // 4:: max(1, len(heads) // 4)][:3]
    choices, answer = _choices(label[heads[0]], [label[h] for h in picked[1:]], "prev-head")
    share = {label[h]: round(float(prev[h]), 3) for h in picked}
    return Posed(f"Which of these heads of {lm.spec.key} looks most at the previous token in “{text}”?",
                 choices, answer,
                 f"{label[heads[0]]} puts {prev[heads[0]]:.0%} of each token's attention on the token before it: "
                 "a positional head.",
                 pd.DataFrame({"head": list(share), "attention on the previous token": list(share.values())}))


def banks_separate(lm, _text=None) -> Posed:
    preset = load_presets()["bank"]
    sentences = preset.sentences()
    records = lm.analyze([s.text for s in sentences])
    metrics = separation_by_layer(collect_target_vectors(records, sentences, "bank"))
    perfect = metrics.index[metrics["accuracy"] >= 1.0]
    if not len(perfect):
        raise InputError("The senses never separate fully in this model: no answer to ask for.")
    first = int(metrics.loc[perfect[0], "layer"])
    layers = [str(v) for v in metrics["layer"]]
    choices, answer = _choices(str(first), layers, "banks", n=len(layers))
    choices = tuple(sorted(choices, key=int))
    return Posed(f"From which layer of {lm.spec.key} is every “bank” (money or river) nearer its own "
                 "sense than the other?", choices, choices.index(str(first)),
                 f"Layer {first}: nearest-centroid accuracy reaches 100 % there (layer 0, the embeddings "
                 f"before any attention, gets {metrics.loc[0, 'accuracy']:.0%}).",
                 metrics[["layer", "accuracy", "silhouette"]].round(3))


def more_contextual(lm, _text=None) -> Posed:
    preset = load_presets()["bank"]
    sentences = preset.sentences()
    occ = collect_target_vectors(lm.analyze([s.text for s in sentences]), sentences, "bank")
    sims = []
    for layer in range(1, occ.vectors.shape[0]):
        v = occ.vectors[layer] / np.linalg.norm(occ.vectors[layer], axis=1, keepdims=True)
        c = v @ v.T
        sims.append(float(c[np.triu_indices(len(c), 1)].mean()))
    lower = sims[-1] < sims[0]
    choices = ("more alike (less context)", "less alike (more context)")
    return Posed(f"Going up {lm.spec.key}'s layers, do the vectors of “bank” in 20 sentences grow more alike "
                 "or less alike?", choices, 1 if lower else 0,
                 f"Their mean cosine goes from {sims[0]:.2f} at layer 1 to {sims[-1]:.2f} at the last layer.",
                 pd.DataFrame({"layer": range(1, len(sims) + 1), "mean cosine between occurrences": np.round(sims, 3)}))


def more_pieces(lm, text: str) -> Posed:
    word = max((w for w in re.findall(r"\w+", text)), key=len, default="")  # the sentence's longest word
    if not word:
        raise InputError("This exercise needs a sentence with a word in it.")
    pieces = len(lm.tokenizer(word, add_special_tokens=False)["input_ids"])
    guesses = [str(n) for n in (1, 3, pieces, pieces + 2, max(2, pieces - 2))]
    choices, answer = _choices(str(pieces), guesses, "pieces")
    tokens = lm.tokenizer.convert_ids_to_tokens(lm.tokenizer(word, add_special_tokens=False)["input_ids"])
    return Posed(f"Into how many tokens does {lm.spec.key} split “{word}”?", choices, answer,
                 f"{pieces}: " + " · ".join(tokens) + ". A rare word is built from frequent pieces.")


def elmo_vectors(lm, text: str) -> Posed:
    record = lm.analyze([text])[0]
    n = record.n_layers + 1
    choices, answer = _choices(str(n), ["1", "2", "4", "5"], "elmo")
    return Posed("How many vectors does ELMo give each word of a sentence?", choices, answer,
                 f"{n}: the character CNN's context-free vector and one per biLSTM layer; a task mixes them "
                 "with learned weights (the scalar mix).")


EXERCISES: dict[str, Exercise] = {e.key: e for e in (
    Exercise("next-word", "Next token", SMOLLM, next_word, "The capital of France is"),
    Exercise("surprise", "Next token", SMOLLM, most_surprising, "The cat sat on the piano and played a sonata."),
    Exercise("why-word", "Why?", SMOLLM, word_that_matters),
    Exercise("prev-head", "Attention", MINILM, previous_token_head,
             "The quick brown fox jumps over the lazy dog near the quiet river bank."),
    Exercise("banks", "Polysemy lab", MINILM, banks_separate),
    Exercise("contextual", "Contextuality", MINILM, more_contextual),
    Exercise("pieces", "Home", SMOLLM, more_pieces, "She studied electroencephalography at the hospital."),
    Exercise("elmo", "ELMo", ELMO, elmo_vectors, "The bank of the river."),
)}

