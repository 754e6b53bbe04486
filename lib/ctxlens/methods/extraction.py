"""Word vectors of many sentences: records in chunks (one batched forward each, so a
progress bar can move and a large file never sits in memory as full records), and their
export to Parquet."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..analysis.extract import (
    arrow_table,
    locate_target,
    parquet_schema,
    parse_layers,
    word_vectors,
)
from ..analysis.words import Pooling
from ..errors import InputError
from ..models.loading import Progress
from ..models.registry import analyze_texts, get_model
from ..record import Analysis


def iter_analyses(
    name: str, texts: Sequence[str], *, device: str | None = None, batch_size: int = 16,
    progress: Progress | None = None, dtype: str | None = None,
) -> Iterator[tuple[int, list[Analysis]]]:
    """(index of the chunk's first sentence, its records) for consecutive chunks of texts.

    The model is loaded first (once per process), reporting its download on `progress` too.
    Records keep only hidden states (what vectors need); other names compute on request.
    """
    if batch_size < 1:
        raise InputError("The batch size must be at least 1.")
    report = progress or (lambda fraction, message: None)
    get_model(name, device, progress, dtype)
    total = len(texts)
    for start in range(0, total, batch_size):
        report(start / total, f"Sentences {start + 1}-{min(start + batch_size, total)} of {total}")
        chunk = list(texts[start:start + batch_size])
        yield start, analyze_texts(name, chunk, device=device, hidden_only=True, dtype=dtype)
    report(1.0, f"{total} sentences read")



def analyze_all(
    name: str, texts: Sequence[str], *, device: str | None = None, batch_size: int = 16,
    progress: Progress | None = None, dtype: str | None = None,
) -> list[Analysis]:
    """Every sentence's record, computed chunk by chunk (each equals its one-at-a-time twin)."""
    if not texts:
        raise InputError("No sentences to analyse.")
    records: list[Analysis] = []
    for _, chunk in iter_analyses(name, texts, device=device, batch_size=batch_size, progress=progress, dtype=dtype):
        records.extend(chunk)
    return records


@dataclass(frozen=True)
class ExtractSummary:
    rows: int
    sentences: int
    missing: list[int]  # sentences where the target (if any) was not found or cut off
    layers: list[int]


def extract_to_parquet(
    out: str | Path, name: str, texts: Sequence[str], *, target: str | None = None,
    layers: str = "all", pooling: Pooling = "mean", batch_size: int = 16,
    device: str | None = None, progress: Progress | None = None,
) -> ExtractSummary:
    """Write the word vectors of texts to a Parquet file (columns: see COLUMNS).

    Checks the target before loading the model, so a typo costs nothing; writes chunk by
    chunk, so memory stays bounded by one chunk's records.
    """
    import pyarrow.parquet as pq

    if not texts:
        raise InputError("No sentences to analyse.")
    if target is not None:
        where = locate_target(texts, target)
        if not where.found:
            raise InputError(where.absent_message())
    out = Path(out)
    partial = out.with_name(out.name + ".partial")  # a failed run leaves no half-written file
    writer, chosen, written, seen = None, None, 0, set()
    try:
        for start, records in iter_analyses(name, texts, device=device, batch_size=batch_size, progress=progress):
            if chosen is None:
                chosen = parse_layers(layers, records[0].hidden_states.shape[0])
            rows = word_vectors(records, start, layers=chosen, pooling=pooling, target=target)
            seen.update(rows.sentence_id.tolist())
            if not len(rows):
                continue
            table = arrow_table(rows)
            writer = writer or pq.ParquetWriter(str(partial), table.schema)
            writer.write_table(table)
            written += len(rows)
    except BaseException:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    if writer is None:  # nothing matched (all cut off by truncation): still a readable file
        pq.write_table(parquet_schema().empty_table(), str(partial))
    else:
        writer.close()
    partial.replace(out)
    missing = [i for i in range(len(texts)) if i not in seen]
    return ExtractSummary(written, len(texts), missing, chosen or [])
