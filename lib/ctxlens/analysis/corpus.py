"""A corpus's word vectors, every layer side by side: what the probes, the model-vs-model
comparison, the corpus search and the layer story all read.

Built from one model's records (the bundled corpus, sentences typed in the app) or read from
a Parquet file written by `ctxlens embed` (long format: one row per word and layer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..record import Analysis
from .extract import COLUMNS
from .words import Pooling, pool_words, split_words


@dataclass
class CorpusWords:
    """N words of a corpus (the shared segmentation) and their vectors at L layers."""

    model: str
    texts: list[str]  # the corpus sentences
    sentence_id: np.ndarray  # [N] int, into texts
    word_index: np.ndarray  # [N] int, into split_words(texts[sentence_id])
    words: list[str]  # [N] as written
    start: np.ndarray  # [N] character offsets of the word in its sentence
    end: np.ndarray  # [N]
    layers: np.ndarray  # [L] the model's layer numbers (0 = embeddings)
    relative_depth: np.ndarray  # [L]
    vectors: np.ndarray  # [L, N, D] float32

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + 4 * self.sentence_id.nbytes)

    def __len__(self) -> int:
        return len(self.words)

    def types(self) -> list[str]:
        """Word types (case-folded), the unit of the control task and of self-similarity."""
        return [w.casefold() for w in self.words]

    def rows_of(self, sentence_ids: np.ndarray, word_index: np.ndarray) -> np.ndarray:
        """Row of each (sentence, word) pair, -1 where this table has no such word."""
        lookup = {(s, w): i for i, (s, w) in enumerate(zip(self.sentence_id.tolist(), self.word_index.tolist()))}
        return np.array([lookup.get((s, w), -1) for s, w in zip(np.asarray(sentence_ids).tolist(),
                                                                 np.asarray(word_index).tolist())], np.int64)

    def layer_row(self, layer: int) -> int:
        """Position of model layer `layer` in `vectors` (a Parquet may hold some layers only)."""
        hits = np.flatnonzero(self.layers == layer)
        if not len(hits):
            raise InputError(f"This corpus holds layers {', '.join(map(str, self.layers))} of {self.model}, "
                             f"not layer {layer}.")
        return int(hits[0])


def from_records(records: Sequence[Analysis], texts: Sequence[str], pooling: Pooling = "mean",
                 first_id: int = 0, progress: Callable[[float, str], None] | None = None) -> CorpusWords:
    """The pooled words of one model's records (records[i] reads texts[first_id + i]); words
    cut off by truncation are left out. `progress` hears of each sentence (up to 80 %)."""
    if not records:
        raise InputError("No sentences to analyse.")
    columns, sid, index, words, start, end = [], [], [], [], [], []
    for offset, record in enumerate(records):
        if progress:
            progress(0.8 * offset / len(records), f"Pooling words of sentence {offset + 1} of {len(records)}")
        pooled, present = pool_words(record, pooling)
        for w, word in enumerate(record.words):
            if word.segment == 0 and present[w]:
                columns.append(pooled[:, w])
                sid.append(first_id + offset)
                index.append(w)
                words.append(word.text)
                start.append(word.start)
                end.append(word.end)
    if not columns:
        raise InputError("No words found in the sentences.")
    first = records[0]
    return CorpusWords(
        model=first.model_key, texts=list(texts), sentence_id=np.array(sid, np.int64),
        word_index=np.array(index, np.int64), words=words, start=np.array(start, np.int64),
        end=np.array(end, np.int64), layers=np.arange(first.hidden_states.shape[0]),
        relative_depth=np.asarray(first.relative_depth(), np.float64),
        vectors=np.stack(columns, axis=1).astype(np.float32),
    )


def concat(parts: Sequence[CorpusWords]) -> CorpusWords:
    """One table from the tables of consecutive chunks of the same corpus."""
    first = parts[0]
    return CorpusWords(
        model=first.model, texts=first.texts,
        sentence_id=np.concatenate([p.sentence_id for p in parts]),
        word_index=np.concatenate([p.word_index for p in parts]),
        words=[w for p in parts for w in p.words],
        start=np.concatenate([p.start for p in parts]), end=np.concatenate([p.end for p in parts]),
        layers=first.layers, relative_depth=first.relative_depth,
        vectors=np.concatenate([p.vectors for p in parts], axis=1),
    )


def from_parquet(source, max_bytes: int) -> CorpusWords:
    """The words of a file written by `ctxlens embed` (one model; the layers it holds).

    Refuses a file whose vectors would pass `max_bytes` in memory, before reading them.
    """
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(source)
        absent = [c for c in COLUMNS if c not in meta.schema.to_arrow_schema().names]
        table = None if absent else pq.read_table(source, columns=[c for c in COLUMNS if c not in ("word", "vector")])
    except Exception as exc:  # not Parquet at all
        raise InputError(f"Cannot read this file as word vectors written by `ctxlens embed`: {exc}") from exc
    if absent:
        raise InputError(f"This Parquet was not written by `ctxlens embed`: it has no {', '.join(absent)} column(s).")
    models = sorted(set(table["model"].to_pylist()))
    if len(models) != 1:
        raise InputError(f"The file holds vectors of {len(models)} models ({', '.join(models[:4])}); give one model's.")
    if meta.num_rows == 0:
        raise InputError("The file holds no word vectors.")
    estimate = _column_bytes(meta, "vector")

    if estimate > max_bytes:
        raise InputError(f"The file's vectors take about {estimate / 2**20:,.0f} MiB, over this server's budget of "
                         f"{max_bytes / 2**20:,.0f} MiB: embed fewer sentences or fewer layers (--layers).")
    vectors = pq.read_table(source, columns=["vector"])["vector"].combine_chunks()
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return _pivot(table.to_pydict(), flat.reshape(len(vectors), -1), models[0])


def _column_bytes(meta, name: str) -> int:
    """Uncompressed bytes of a column over all row groups (a list column's leaves are named
    `name.list.element` in the file's schema)."""
    leaves = [i for i in range(meta.num_columns) if meta.schema.column(i).path.split(".")[0] == name]
    return sum(meta.row_group(g).column(i).total_uncompressed_size
               for g in range(meta.num_row_groups) for i in leaves)


def _pivot(columns: dict, vectors: np.ndarray, model: str) -> CorpusWords:
    """Long rows (word × layer) → [L, N, D], words in file order; every word must have every layer."""
    sid, widx, layer = (np.asarray(columns[c], np.int64) for c in ("sentence_id", "word_index", "layer"))
    layers = np.unique(layer)
    keys = sid * (int(widx.max()) + 1) + widx
    order = np.sort(np.unique(keys, return_index=True)[1])  # words in file order
    word_keys = keys[order]
    n, L = len(order), len(layers)
    if len(keys) != n * L:
        raise InputError("Some words of the file lack some layers: write it again with `ctxlens embed`.")
    out = np.empty((L, n, vectors.shape[1]), np.float32)
    row_of = {k: i for i, k in enumerate(word_keys.tolist())}
    rows = np.array([row_of[k] for k in keys.tolist()])
    out[np.searchsorted(layers, layer), rows] = vectors
    texts_by_id = {}
    for s, text in zip(sid.tolist(), columns["sentence"]):
        texts_by_id.setdefault(s, text)
    ids = sorted(texts_by_id)
    position = {s: i for i, s in enumerate(ids)}  # sentence ids may skip (target-only files)
    words_sid, words_idx = sid[order], widx[order]
    split = {s: split_words(text) for s, text in texts_by_id.items()}
    spans = [split[s][w] for s, w in zip(words_sid.tolist(), words_idx.tolist())]
    depth = {int(l_): float(d) for l_, d in zip(layer.tolist(), columns["relative_depth"])}
    return CorpusWords(
        model=model, texts=[texts_by_id[s] for s in ids],
        sentence_id=np.array([position[s] for s in words_sid.tolist()], np.int64), word_index=words_idx,
        words=[w.text for w in spans], start=np.array([w.start for w in spans], np.int64),
        end=np.array([w.end for w in spans], np.int64), layers=layers,
        relative_depth=np.array([depth[int(x)] for x in layers]), vectors=out,
    )
