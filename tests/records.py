"""Hand-made analysis records for tests of pure functions (no model involved)."""

import numpy as np

from ctxlens.analysis.words import split_words
from ctxlens.record import Activations, Analysis, Family


def word_record(text: str, states, family: Family = Family.ELMO, model_key: str = "hand-made") -> Analysis:
    """One token per word of the shared segmentation; states [layers + 1, words, dim]."""
    words = tuple(split_words(text))
    n = len(words)
    states = np.asarray(states, dtype=np.float32)
    assert states.shape[1] == n, "one vector per word"
    return Analysis(
        model_key=model_key, family=family, text=text, text_pair=None,
        tokens=tuple(w.text for w in words), token_ids=np.arange(n),
        offsets=np.array([[w.start, w.end] for w in words], dtype=np.int64).reshape(n, 2),
        word_ids=np.arange(n), special_mask=np.zeros(n, dtype=bool),
        segment_ids=np.zeros(n, dtype=np.int64), words=words, acts=Activations.from_arrays(states),
    )
