"""A corpus's word vectors per model (cached), and the search for a word's nearest
occurrences in it at a layer (exBERT's corpus search).

The corpus is the bundled one (the contextuality corpus: everyday sentences that share many
words, and the Polysemy lab's presets) or a Parquet written by `ctxlens embed`. The bundled
corpus is ours and bounded, so it is read whole rather than cut to one request's token budget,
and computed once per model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.contextuality import load_corpus
from ..analysis.corpus import CorpusWords, concat, from_records
from ..analysis.neighbours import nearest
from ..analysis.polysemy import check_target, find_target, load_presets
from ..analysis.words import Pooling, split_words
from ..backends.limits import memory_budget_bytes
from ..cache import cached
from ..errors import InputError
from ..models import catalog as cat
from ..models.loading import Progress
from ..validate import clean_text
from .extraction import iter_analyses
from .registry import register


def bundled_corpus() -> tuple[str, ...]:
    """The contextuality corpus, then the Polysemy lab's preset sentences (both senses of bank,
    bat, spring, …), so a search for "bank" finds river banks and money banks alike."""
    presets = (s.text for p in load_presets().values() for s in p.sentences())
    return tuple(dict.fromkeys([*load_corpus(), *presets]))  # in order, each sentence once


def corpus_words(model: str, texts: Sequence[str] | None = None, *, pooling: Pooling = "mean",
                 device: str | None = None, dtype: str | None = None,
                 progress: Progress | None = None) -> CorpusWords:
    """Every word of `texts` (default: the bundled corpus) at every layer of `model`, computed
    in batches once per model, corpus and pooling."""
    # Cleaned as the records' texts are, so spans and word indices point into these very texts.
    texts = bundled_corpus() if texts is None else tuple(clean_text(t, "sentence") for t in texts)
    if not texts:
        raise InputError("No sentences to analyse.")

    def compute() -> CorpusWords:
        parts = [from_records(records, texts, pooling, first_id=start)
                 for start, records in iter_analyses(model, texts, device=device, progress=progress, dtype=dtype)]
        return concat(parts)

    return cached(("corpus-words", model, device, dtype, pooling, texts), compute)


def parquet_words(path: str) -> CorpusWords:
    """A `ctxlens embed` Parquet as a corpus (cached by path); at most half the memory budget."""
    from ..analysis.corpus import from_parquet

    return cached(("parquet-words", str(path)), lambda: from_parquet(path, memory_budget_bytes() // 2))


@dataclass(frozen=True)
class Query:
    """The word someone picked: its sentence, which occurrence, and its vectors per layer."""

    text: str
    word: str
    start: int
    end: int
    vectors: np.ndarray  # [L, D] at the corpus's layers


def query_word(model: str, text: str, word: str, occurrence: int = 0, *, layers: np.ndarray,
               pooling: Pooling = "mean", device: str | None = None, dtype: str | None = None) -> Query:
    """The vectors of `word` (its `occurrence`-th whole-word match) in `text`, read by `model`
    as the corpus was: same pooling, the corpus's layers."""
    from ..models.registry import analyze_text

    word, text = check_target(word), clean_text(text, "sentence")  # as the record will read it
    hits = find_target(split_words(text), word)
    if not hits:
        raise InputError(f"'{word}' does not occur as a whole word in the sentence.")
    if not 0 <= occurrence < len(hits):
        raise InputError(f"'{word}' occurs {len(hits)} time(s) in the sentence; pick one of them.")
    record = analyze_text(model, text, device=device, dtype=dtype)
    table = from_records([record], [text], pooling)
    row = np.flatnonzero(table.word_index == hits[occurrence])
    if not len(row):
        reason = ("the sentence is longer than the model reads at once" if record.truncated
                  else "the model reads it as no token of its own")
        raise InputError(f"'{word}' has no vector here: {reason}.")
    w = split_words(text)[hits[occurrence]]
    return Query(text, w.text, w.start, w.end, table.vectors[np.asarray(layers), row[0]])


def search(corpus: CorpusWords, query: Query, layer: int, k: int = 10) -> pd.DataFrame:
    """The k corpus words nearest (cosine) to the query at model layer `layer`.

    Columns: rank, cosine, word, sentence, start, end, sentence_id, same_word (the corpus word
    is the query's word, case-folded)."""
    row = corpus.layer_row(layer)
    index, cosine = nearest(corpus.vectors[row], query.vectors[row], k)
    rows = []
    for rank, (i, c) in enumerate(zip(index[0].tolist(), cosine[0].tolist()), 1):
        rows.append({"rank": rank, "cosine": c, "word": corpus.words[i],
                     "sentence": corpus.texts[corpus.sentence_id[i]], "start": int(corpus.start[i]),
                     "end": int(corpus.end[i]), "sentence_id": int(corpus.sentence_id[i]),
                     "same_word": corpus.words[i].casefold() == query.word.casefold()})
    return pd.DataFrame(rows)


def neighbours_across_layers(corpus: CorpusWords, query: Query, k: int = 10) -> pd.DataFrame:
    """At every layer: how many of the k neighbours are the query's own word, their mean
    cosine, and how many of them are still neighbours at the next layer (overlap)."""
    rows, previous = [], None
    for position, layer in enumerate(corpus.layers.tolist()):
        found = search(corpus, query, layer, k)
        members = set(zip(found.sentence_id, found.start))
        rows.append({"layer": layer, "relative_depth": float(corpus.relative_depth[position]),
                     "same_word": int(found.same_word.sum()), "mean_cosine": float(found.cosine.mean()),
                     "kept_from_previous": np.nan if previous is None else len(members & previous),
                     "top_word": found.word.iloc[0], "top_sentence": found.sentence.iloc[0]})
        previous = members
    return pd.DataFrame(rows)


register("corpus-search", "Corpus search", "a word's nearest occurrences in a corpus at a layer, and how they change "
         "across layers (exBERT)", [cat.HIDDEN], search, k=10)
