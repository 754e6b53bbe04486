"""The polysemy lab: one ambiguous word in many sentences, followed through the layers.

The page runs a model on each sentence; everything after that lives here: parsing the
sentences (optionally tagged with a sense), finding the target word on the shared word
segmentation, collecting its vectors per layer, projecting them to 2-D, and measuring how
well the senses separate (leave-one-out nearest-centroid accuracy, silhouette).
"""

from __future__ import annotations

import csv
import html
import io
import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..record import Analysis, Word
from .words import Pooling, pool_words, split_words

UNLABELLED = "(no sense)"  # sense shown for sentences typed without a tag
MAX_SENSE_TAG = 40  # a longer text before "|" is taken as part of the sentence

Method = Literal["pca", "umap", "tsne"]
Which = Literal["all", "first"]


# ---------------------------------------------------------------- sentences and targets


@dataclass(frozen=True)
class LabeledSentence:
    text: str
    sense: str | None = None


def parse_sentences(text: str) -> list[LabeledSentence]:
    """One sentence per line, optionally `sense | sentence`; blank lines are ignored."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        tag, bar, rest = line.partition("|")
        tag, rest = tag.strip(), rest.strip()
        # A tag must be short and followed by a sentence; otherwise "|" is part of the text.
        if bar and tag and rest and len(tag) <= MAX_SENSE_TAG:
            out.append(LabeledSentence(rest, tag))
        else:
            out.append(LabeledSentence(line))
    return out


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError as exc:
        raise InputError("The file is not UTF-8 text.") from exc


def parse_csv(data: bytes | str) -> list[LabeledSentence]:
    """CSV with a `sentence` column and an optional `sense` column.

    Without a header row, the first column is the sentence and the second (if any) the sense.
    """
    rows = [r for r in csv.reader(io.StringIO(_decode(data))) if any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    if "sentence" in header:
        s_col = header.index("sentence")
        k_col = header.index("sense") if "sense" in header else None
        rows = rows[1:]
    else:
        s_col, k_col = 0, 1
    out = []
    for row in rows:
        text = row[s_col].strip() if s_col < len(row) else ""
        if not text:
            continue
        sense = row[k_col].strip() if k_col is not None and k_col < len(row) else ""
        out.append(LabeledSentence(text, sense or None))
    return out


def parse_upload(filename: str, data: bytes | str) -> list[LabeledSentence]:
    """An uploaded .csv is read as CSV; anything else as typed text."""
    if filename.lower().endswith(".csv"):
        return parse_csv(data)
    return parse_sentences(_decode(data))


def check_target(target: str) -> str:
    """The target as one word of the shared segmentation, or InputError."""
    words = split_words(target.strip())
    if not words:
        raise InputError("Type the word to follow (for example: bank).")
    if len(words) > 1:
        raise InputError(
            f"'{target.strip()}' is not a single word: the lab follows one word "
            "(no spaces, hyphens or punctuation)."
        )
    return words[0].text


def find_target(words: Sequence[Word] | str, target: str, occurrences: Which = "all") -> list[int]:
    """Indices of the words equal to `target`, ignoring case.

    Matching is on whole words of the shared segmentation, so "bank" matches "Bank," but
    not "banking" or "riverbank".
    """
    if occurrences not in ("all", "first"):
        raise ValueError(f"occurrences must be 'all' or 'first', not {occurrences!r}")
    wanted = check_target(target).casefold()
    if isinstance(words, str):
        words = split_words(words)
    hits = [i for i, w in enumerate(words) if w.text.casefold() == wanted]
    return hits[:1] if occurrences == "first" else hits


def hover_html(text: str, start: int, end: int, sense: str | None = None, width: int = 60) -> str:
    """The sentence, HTML-escaped and wrapped, with characters start:end in bold.

    User text goes into plotly hover labels, which render HTML tags: everything but our own
    <b> and <br> is escaped.
    """
    breaks = set(_wrap_points(text, width))
    cuts = sorted({0, len(text), start, end, *breaks, *(b + 1 for b in breaks)})
    parts = []
    for a, b in zip(cuts, cuts[1:]):
        if a in breaks:
            parts.append("<br>")
            continue
        piece = html.escape(text[a:b], quote=False)
        parts.append(f"<b>{piece}</b>" if start <= a and b <= end else piece)
    if sense is not None:
        parts.append(f"<br><i>sense: {html.escape(sense, quote=False)}</i>")
    return "".join(parts)


def _wrap_points(text: str, width: int) -> list[int]:
    """Indices of the spaces to turn into line breaks so lines stay near `width` chars."""
    breaks, line_start, last_space = [], 0, -1
    for i, ch in enumerate(text + " "):  # the sentinel space checks the last line too
        if ch != " ":
            continue
        if i - line_start > width and last_space > line_start:
            breaks.append(last_space)
            line_start = last_space + 1
        last_space = i
    return [b for b in breaks if b < len(text)]


# ---------------------------------------------------------------- collecting vectors


@dataclass
class Occurrences:
    """Every occurrence of the target in one model's records.

    N occurrences; a sentence can contribute several (occurrences="all").
    """

    model_key: str
    target: str
    vectors: np.ndarray  # [L+1, N, D] float32
    sentence_index: np.ndarray  # [N] int: index into the sentences given
    senses: list[str]  # [N], UNLABELLED where the sentence had no tag
    word_index: np.ndarray  # [N] int: index into that record's words
    texts: list[str]  # [N] the sentence of each occurrence
    hover: list[str]  # [N] HTML for plotly hover labels
    relative_depth: np.ndarray  # [L+1]
    missing: list[int] = field(default_factory=list)  # sentences where the target was not found

    @property
    def n(self) -> int:
        return self.vectors.shape[1]

    @property
    def labelled(self) -> np.ndarray:
        """Mask of occurrences whose sentence carried a sense tag."""
        return np.array([s != UNLABELLED for s in self.senses], dtype=bool)


def collect_target_vectors(
    records: Sequence[Analysis],
    sentences: Sequence[LabeledSentence],
    target: str,
    pooling: Pooling = "mean",
    occurrences: Which = "all",
) -> Occurrences:
    """The target's word vectors at every layer, one column per occurrence.

    records[i] is the analysis of sentences[i]. A sentence whose target is absent (or cut
    off by truncation) is listed in `missing` rather than dropped silently.
    """
    if len(records) != len(sentences):
        raise ValueError(f"{len(records)} records for {len(sentences)} sentences")
    if not records:
        raise InputError("No sentences to analyse.")
    check_target(target)
    columns, rows, missing = [], [], []
    for i, (record, sentence) in enumerate(zip(records, sentences)):
        first_segment = [w for w in record.words if w.segment == 0]
        hits = find_target(first_segment, target, occurrences)
        if not hits:
            missing.append(i)
            continue
        pooled, present = pool_words(record, pooling)
        kept = [w for w in hits if present[w]]
        if not kept:
            missing.append(i)
            continue
        sense = sentence.sense or UNLABELLED
        for w in kept:
            word = record.words[w]
            columns.append(pooled[:, w])
            hover = hover_html(record.text, word.start, word.end, sense)
            rows.append((i, sense, w, record.text, hover))
    if not columns:
        raise InputError(f"'{target.strip()}' does not occur as a whole word in any sentence.")
    first = records[0]
    return Occurrences(
        model_key=first.model_key,
        target=target.strip(),
        vectors=np.stack(columns, axis=1).astype(np.float32),
        sentence_index=np.array([r[0] for r in rows], dtype=np.int64),
        senses=[r[1] for r in rows],
        word_index=np.array([r[2] for r in rows], dtype=np.int64),
        texts=[r[3] for r in rows],
        hover=[r[4] for r in rows],
        relative_depth=first.relative_depth(),
        missing=missing,
    )


# ---------------------------------------------------------------- projections


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


# Cosine distances below this are set to exactly 0. The same vector twice comes out of the
# float64 product as ±1e-16, with a sign and size that depend on the CPU's BLAS kernel, and
# the metrics would read that noise as structure. 1e-6 is an angle of 0.08° (1 - cos θ ≈
# θ²/2): far above what float32 rounding leaves between two computations of one vector
# (relative 1e-6 gives 1e-12), far below the smallest distance between occurrences above
# layer 0 on the presets (2e-3: SmolLM2, MiniLM, tiny ELMo).
SAME_POINT = 1e-6


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """[N, D] → [N, N] cosine distances in float64 from unit vectors, noise set to 0."""
    u = _unit(np.asarray(vectors, dtype=np.float64))
    d = 1.0 - np.clip(u @ u.T, -1.0, 1.0)
    d = (d + d.T) / 2  # the product is not always exactly symmetric
    d[d < SAME_POINT] = 0.0
    np.fill_diagonal(d, 0.0)
    return d


def all_identical(vectors: np.ndarray) -> bool:
    """Whether all [N, D] vectors point the same way: every cosine distance is 0."""
    return len(vectors) > 0 and not cosine_distances(vectors).any()


def project(
    vectors: np.ndarray, method: Method = "pca", seed: int = 0, normalize: bool = True
) -> np.ndarray:
    """[N, D] → [N, 2], the same output for the same seed.

    Vectors are unit-normalised first (normalize=True) so the picture agrees with the cosine
    metrics. Fewer than 4 points are too few for UMAP or t-SNE: PCA is used instead.
    Vectors that are all identical (`all_identical`) give one point at the origin.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected [N, D] vectors, got shape {x.shape}")
    if normalize:
        x = _unit(x)
    n = x.shape[0]
    if method not in ("pca", "umap", "tsne"):
        raise ValueError(f"unknown projection {method!r}: use pca, umap or tsne")
    if normalize and all_identical(x):
        return np.zeros((n, 2))  # a projection would blow rounding noise up into a scatter
    if method == "pca" or n < 4:
        return _pca(x)
    if method == "umap":
        return _umap(x, seed)
    return _tsne(x, seed)


def _pca(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    out = np.zeros((x.shape[0], 2))
    k = min(2, x.shape[0], x.shape[1])
    if x.shape[0] > 1:
        y = PCA(n_components=k, svd_solver="full").fit_transform(x)
        # Fix each axis's sign so reruns and neighbouring layers don't flip the picture.
        y *= np.where(y[np.abs(y).argmax(axis=0), range(k)] < 0, -1.0, 1.0)
        out[:, :k] = y
    return out


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    import umap

    # random_state makes UMAP deterministic (and single-threaded); n_jobs=1 says we know.
    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(15, x.shape[0] - 1), random_state=seed, n_jobs=1
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    # sklearn requires perplexity < N; ~N/3 keeps small sets meaningful.
    perplexity = float(min(30.0, max(1.0, (x.shape[0] - 1) / 3)))
    # The exact gradient is faster than Barnes-Hut for the few hundred points a lab holds.
    method = "exact" if x.shape[0] <= 300 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=method)
    return np.asarray(tsne.fit_transform(x), dtype=np.float64)


_warm_lock = threading.Lock()
_warm_done = False


def warm_up_umap() -> None:
    """Run a tiny UMAP so numba compiles once per process (safe from a background thread)."""
    global _warm_done
    with _warm_lock:
        if _warm_done:
            return
        x = np.random.default_rng(0).normal(size=(12, 4))
        _umap(x, seed=0)
        _warm_done = True


# ---------------------------------------------------------------- separation metrics


def sense_order(senses: Sequence[str]) -> np.ndarray:
    """Indices that group occurrences by sense (senses in order of first appearance)."""
    rank = {s: k for k, s in enumerate(dict.fromkeys(senses))}
    return np.array(sorted(range(len(senses)), key=lambda i: rank[senses[i]]), dtype=np.int64)


def cosine_matrix(vectors: np.ndarray, senses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise cosine similarity of [N, D] vectors with rows grouped by sense.

    Returns (matrix [N, N] in the grouped order, order [N] of original indices).
    """
    order = sense_order(senses)
    return 1.0 - cosine_distances(np.asarray(vectors)[order]), order  # the metrics' distances


TIE = 1e-9  # cosines to two centroids closer than this are a tie


def nearest_centroid_accuracy(
    vectors: np.ndarray, labels: Sequence, leave_one_out: bool = True
) -> float:
    """Share of points whose nearest sense centroid (by cosine) is their own sense.

    Vectors are unit-normalised, centroids are means of unit vectors. With leave_one_out,
    each point is left out of its own centroid, so a sense seen once can never be
    recognised. A point tied between k nearest centroids earns 1/k if its own is among
    them (cosines within TIE; all vectors identical ties every centroid). NaN with fewer
    than two senses.
    """
    labels = np.asarray(labels)
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return float("nan")
    u = _unit(np.asarray(vectors, dtype=np.float64))
    sums = np.zeros((len(classes), u.shape[1]))
    np.add.at(sums, y, u)
    # Cosine to a centroid is scale-free, so sums stand in for means.
    dots = u @ sums.T  # [N, K]
    norms2 = np.broadcast_to((sums**2).sum(axis=1), dots.shape).copy()
    if leave_one_out:
        rows = np.arange(len(y))
        self_dot = (u**2).sum(axis=1)
        # |S - x|^2 = |S|^2 - 2 x·S + |x|^2 ; x·(S - x) = x·S - |x|^2
        norms2[rows, y] = norms2[rows, y] - 2 * dots[rows, y] + self_dot
        dots = dots.copy()
        dots[rows, y] -= self_dot
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = dots / np.sqrt(norms2)
    if all_identical(u):
        # One point (GPT's context-free layer 0): every centroid is as near as any other,
        # whatever the rounding of the sums says.
        cos = np.ones_like(cos)
    cos[norms2 <= 1e-9] = -np.inf  # an empty centroid (singleton left out) cannot win
    # Ties share the credit: identical vectors score chance, not whatever the tie-break picks.
    tied = cos >= cos.max(axis=1, keepdims=True) - TIE
    return float((tied[np.arange(len(y)), y] / tied.sum(axis=1)).mean())


def loo_nearest_centroid_accuracy(vectors: np.ndarray, labels: Sequence) -> float:
    return nearest_centroid_accuracy(vectors, labels, leave_one_out=True)


def silhouette(vectors: np.ndarray, labels: Sequence) -> float:
    """Mean cosine silhouette; NaN unless 2 ≤ senses ≤ N - 1; 0 when all vectors are identical.

    On `cosine_distances`, not sklearn's metric="cosine": that one turns the rounding noise
    between identical vectors into any value from -1 to 1, depending on the CPU.
    """
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    k = len(np.unique(labels))
    if k < 2 or k > len(labels) - 1:
        return float("nan")
    distances = cosine_distances(vectors)
    if not distances.any():
        return 0.0  # one point: no sense is apart from another
    return float(silhouette_score(distances, labels, metric="precomputed"))


def separation_by_layer(occ: Occurrences) -> pd.DataFrame:
    """Per layer: how well the senses separate. Untagged occurrences are left out."""
    mask = occ.labelled
    labels = np.array(occ.senses)[mask]
    rows = []
    for layer in range(occ.vectors.shape[0]):
        x = occ.vectors[layer][mask]
        rows.append(
            {
                "model": occ.model_key,
                "layer": layer,
                "relative_depth": float(occ.relative_depth[layer]),
                "accuracy": loo_nearest_centroid_accuracy(x, labels) if len(x) else float("nan"),
                "silhouette": silhouette(x, labels) if len(x) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    target: str
    senses: dict[str, list[str]]

    def sentences(self) -> list[LabeledSentence]:
        return [LabeledSentence(t, s) for s, texts in self.senses.items() for t in texts]

    def as_text(self) -> str:
        """The preset in the typed format (`sense | sentence` per line), for a text area."""
        return "\n".join(f"{s.sense} | {s.text}" for s in self.sentences())


def load_presets() -> dict[str, Preset]:
    """The built-in ambiguous words, by target word."""
    raw = json.loads(
        resources.files("ctxlens").joinpath("data/polysemy_presets.json").read_text("utf-8")
    )
    return {p["target"]: Preset(p["target"], dict(p["senses"])) for p in raw["presets"]}
