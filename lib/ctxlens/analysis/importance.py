"""Word importances: token scores summed to words, and how far several methods agree.

Pure numpy/scipy: the methods that compute the scores live in `methods/`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr


def sum_to_words(token_scores: np.ndarray, word_ids: np.ndarray, words: np.ndarray) -> np.ndarray:
    """[len(words)] float32: for each word index in `words`, the signed sum of the scores of
    the tokens whose word id it is (summed in float64)."""
    scores = np.asarray(token_scores, dtype=np.float64)
    word_ids = np.asarray(word_ids)
    return np.array([scores[word_ids == w].sum() for w in words], dtype=np.float32)


def rank_agreement(importances: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Spearman rank correlation between every pair of methods' word importances.

    Ranks are of magnitudes (how much a word matters, either way): attention-based scores
    cannot be negative, and a word that pushes hard against the prediction matters too.
    Words a method could not score (NaN) are left out of that pair. A pair where either
    method gives every word the same score (or fewer than 3 words remain) has no ranking to
    compare: NaN.
    """
    names = list(importances)
    table = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = np.abs(np.asarray(importances[a], float)), np.abs(np.asarray(importances[b], float))
            both = ~(np.isnan(x) | np.isnan(y))
            rho = np.nan
            if both.sum() >= 3 and np.ptp(x[both]) > 0 and np.ptp(y[both]) > 0:
                rho = float(spearmanr(x[both], y[both]).statistic)
            table.loc[a, b] = table.loc[b, a] = rho
    for name in names:
        if np.ptp(np.abs(np.nan_to_num(np.asarray(importances[name], float)))) == 0:
            table.loc[name, name] = np.nan
    return table
