"""Word vectors from records: sentence files, target lookup, layers, pooled rows and their
Arrow table. Pure: the forwards are `methods.extraction`'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..record import Analysis
from .polysemy import Which, check_target, find_target
from .words import Pooling, pool_words, split_words

COLUMNS = ("sentence_id", "sentence", "word", "word_index", "layer", "relative_depth", "model", "vector")


# ---------------------------------------------------------------- sentences and targets


@dataclass(frozen=True)
class TargetHits:
    """Where a target word occurs in each sentence (whole words of the shared segmentation)."""

    target: str
    hits: list[list[int]]  # per sentence: indices of the matching words
    inside_words: list[str]  # words that contain the target without being it ("riverbank")

    @property
    def missing(self) -> list[int]:
        return [i for i, h in enumerate(self.hits) if not h]

    @property
    def found(self) -> bool:
        return any(self.hits)

    def absent_message(self) -> str:
        """What to tell someone when no sentence has the target as a whole word."""
        message = f"'{self.target}' does not occur as a whole word in any sentence"
        if self.inside_words:
            shown = ", ".join(f"'{w}'" for w in self.inside_words[:8])
            return f"{message}; it appears only inside other words: {shown}."
        return message + "."


def locate_target(texts: Sequence[str], target: str, occurrences: Which = "all") -> TargetHits:
    """The target's word indices per sentence, matched as collect_target_vectors matches."""
    target = check_target(target)
    folded = target.casefold()
    hits, inside = [], {}
    for text in texts:
        words = split_words(text)
        hits.append(find_target(words, target, occurrences))
        for w in words:
            if folded in w.text.casefold() and w.text.casefold() != folded:
                inside.setdefault(w.text.casefold(), w.text)
    return TargetHits(target, hits, list(inside.values()))


# ---------------------------------------------------------------- batched analysis


# ---------------------------------------------------------------- word vectors


def parse_layers(spec: str, n_hidden: int) -> list[int]:
    """`all`, or a comma list such as `0,6,-1` (negative counts from the last layer),
    for a model with n_hidden hidden-state layers (the embedding layer is 0)."""
    spec = spec.strip().lower()
    if spec in ("", "all"):
        return list(range(n_hidden))
    layers = []
    for part in spec.split(","):
        try:
            layer = int(part)
        except ValueError:
            raise InputError(f"--layers takes 'all' or integers like 0,6,-1, not {part.strip()!r}.") from None
        if not -n_hidden <= layer < n_hidden:
            raise InputError(f"Layer {layer} does not exist: this model has layers 0 to {n_hidden - 1}.")
        layers.append(layer % n_hidden)
    return list(dict.fromkeys(layers))


@dataclass
class WordVectors:
    """Long format: one row per (sentence, word, layer), vectors stacked in `vectors`."""

    sentence_id: np.ndarray  # [R] int64
    sentence: list[str]
    word: list[str]
    word_index: np.ndarray  # [R] int64, into the sentence's words
    layer: np.ndarray  # [R] int64
    relative_depth: np.ndarray  # [R] float64
    model: list[str]
    vectors: np.ndarray  # [R, D] float32

    def __len__(self) -> int:
        return len(self.sentence)


def word_vectors(
    records: Sequence[Analysis], first_id: int = 0, *, layers: Sequence[int] | None = None,
    pooling: Pooling = "mean", target: str | None = None,
) -> WordVectors:
    """Pooled word vectors of records (sentence ids counted from first_id), word-major then
    layer: every word of the first segment, or only the target's occurrences. Words cut off
    by truncation are left out."""
    ids, index, layer, depth, vectors = [], [], [], [], []
    sentence, word, model = [], [], []
    dim = records[0].hidden_states.shape[-1] if records else 0
    for offset, record in enumerate(records):
        chosen = np.arange(record.hidden_states.shape[0]) if layers is None else np.asarray(layers)
        pooled, present = pool_words(record, pooling, chosen)  # [layers, words, dim]
        first = [w for w in record.words if w.segment == 0]
        picked = find_target(first, target) if target else range(len(first))
        picked = [w for w in picked if present[w]]
        n, k = len(picked), len(chosen)
        if not n:
            continue
        ids.append(np.full(n * k, first_id + offset))
        index.append(np.repeat(picked, k))
        layer.append(np.tile(chosen, n))
        depth.append(np.tile(record.relative_depth()[chosen], n))
        vectors.append(pooled[:, picked].transpose(1, 0, 2).reshape(n * k, dim))
        sentence += [record.text] * (n * k)
        word += [record.words[w].text for w in picked for _ in range(k)]
        model += [record.model_key] * (n * k)

    def joined(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return WordVectors(
        sentence_id=joined(ids, np.int64), sentence=sentence, word=word,
        word_index=joined(index, np.int64), layer=joined(layer, np.int64),
        relative_depth=joined(depth, np.float64), model=model,
        vectors=np.concatenate(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32),
    )


def parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("sentence_id", pa.int64()), ("sentence", pa.string()), ("word", pa.string()),
            ("word_index", pa.int64()), ("layer", pa.int64()), ("relative_depth", pa.float64()),
            ("model", pa.string()), ("vector", pa.list_(pa.float32())),
        ]
    )


def arrow_table(rows: WordVectors):
    import pyarrow as pa

    dim = rows.vectors.shape[1]
    offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int32) * dim)
    vectors = pa.ListArray.from_arrays(offsets, pa.array(rows.vectors.reshape(-1), pa.float32()))
    columns = [
        rows.sentence_id, rows.sentence, rows.word, rows.word_index, rows.layer,
        rows.relative_depth, rows.model, vectors,
    ]
    return pa.Table.from_arrays(columns, schema=parquet_schema())


class RowGroupWriter:
    """A Parquet file written in row groups of about `rows_per_group` rows, however small the
    tables handed to `write` (a batch of 16 sentences is a few hundred rows). Small row groups
    repeat the per-group dictionaries and headers: 384-wide vectors took 2,368 bytes a row in
    250-row groups, 1,576 in one group (the vector itself is 1,536)."""

    def __init__(self, path: str | Path, rows_per_group: int = 32_768):
        self.path, self.rows_per_group = str(path), rows_per_group
        self._writer, self._buffer, self._buffered = None, [], 0

    def write(self, table) -> None:
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._writer = self._writer or pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table, row_group_size=max(self.rows_per_group, table.num_rows))
        self._buffer, self._buffered = [], 0

    def close(self) -> None:
        """Write what is buffered; an empty file still gets the schema (a readable file)."""
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is None:
            pq.write_table(parquet_schema().empty_table(), self.path)
        else:
            self._writer.close()

    def __enter__(self) -> "RowGroupWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
