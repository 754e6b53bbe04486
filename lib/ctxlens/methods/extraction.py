"""Word vectors of many sentences: records in chunks (one batched forward each, so a
progress bar can move and a large file never sits in memory as full records), and their
export to Parquet."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..analysis.extract import (
    RowGroupWriter,
    arrow_table,
    locate_target,
    parse_layers,
    word_vectors,
)
from ..analysis.polysemy import parse_csv
from ..analysis.words import Pooling
from ..backends.limits import REQUEST_TOKENS_ENV, request_token_budget
from ..errors import InputError
from ..models.loading import Progress
from ..models.registry import analyze_texts, get_model
from ..record import Analysis, Family

_COUNT_CHUNK = 16  # sentences tokenised at a time while counting against the budget


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
    total, started = len(texts), time.monotonic()
    for start in range(0, total, batch_size):
        report(start / total, progress_line(start, total, started))
        chunk = list(texts[start:start + batch_size])
        yield start, analyze_texts(name, chunk, device=device, hidden_only=True, dtype=dtype)
    report(1.0, progress_line(total, total, started))


def progress_line(done: int, total: int, started: float) -> str:
    """Both engines' progress: sentences done of all, and sentences a second since `started`."""
    rate = f", {done / max(time.monotonic() - started, 1e-9):,.0f}/s" if done else ""
    return f"Sentences {done:,} of {total:,}{rate}"


@dataclass(frozen=True)
class SentenceCut:
    """What one request reads of a sentence list under its token budget
    (`CTXLENS_REQUEST_TOKENS`): the first `n_read` of `n_total` sentences."""

    n_read: int
    n_total: int
    tokens_read: int  # the tokens of those sentences, as `model` reads them
    budget: int
    model: str  # the model whose tokens ran out first (with several, the one that read most)
    unit: str = "tokens"  # ELMo's tokens are words

    @property
    def cut(self) -> bool:
        return self.n_read < self.n_total

    def message(self) -> str:
        """What was cut, in the words of the interactive limit's message."""
        return (f"{self.model}: one request reads at most {self.budget:,} {self.unit} in all "
                f"({REQUEST_TOKENS_ENV} sets the budget), so only the first {self.n_read:,} of "
                f"{self.n_total:,} sentences ({self.tokens_read:,} {self.unit}) were analysed.")


def _tokens_per_sentence(lm, texts: Sequence[str], budget: int) -> list[int]:
    """Each sentence's tokens as the model reads them (each cut to CTXLENS_MAX_TOKENS), for
    the sentences up to the first that passes the budget: a long list is tokenised only as
    far as the budget reaches."""
    counts: list[int] = []
    total = 0
    for start in range(0, len(texts), _COUNT_CHUNK):
        for encoded in lm.encode(list(texts[start:start + _COUNT_CHUNK])):
            counts.append(encoded.n_tokens)
            total += counts[-1]
            if total > budget:
                return counts
    return counts


def sentences_within_budget(
    names: str | Sequence[str], texts: Sequence[str], *, device: str | None = None,
    dtype: str | None = None, budget: int | None = None, progress: Progress | None = None,
) -> SentenceCut:
    """The longest prefix of `texts` that every model in `names` reads within the request's
    token budget (default `CTXLENS_REQUEST_TOKENS`), at least one sentence. With several
    models they all read the same sentences, so their results compare."""
    budget = budget or request_token_budget()
    names = [names] if isinstance(names, str) else list(names)
    n = len(texts)
    counts, units = {}, {}
    for name in names:
        lm = get_model(name, device, progress, dtype)
        counts[name] = _tokens_per_sentence(lm, texts[:n], budget)
        units[name] = "words" if lm.spec.family is Family.ELMO else "tokens"
        fit, total = 0, 0
        for c in counts[name]:
            if total + c > budget:
                break
            fit, total = fit + 1, total + c
        n = min(n, max(fit, 1))
    tokens = {name: sum(c[:n]) for name, c in counts.items()}
    model = max(tokens, key=tokens.get) if tokens else ""
    return SentenceCut(n, len(texts), tokens.get(model, 0), budget, model, units.get(model, "tokens"))


class Analyses(list):
    """A sentence list's records (the first `cut.n_read` sentences), and what the request's
    token budget left out (`cut`)."""

    def __init__(self, records, cut: SentenceCut):
        super().__init__(records)
        self.cut = cut


def analyze_all(
    name: str, texts: Sequence[str], *, device: str | None = None, batch_size: int = 16,
    progress: Progress | None = None, dtype: str | None = None, token_budget: int | None = None,
) -> Analyses:
    """The records of the sentences one request reads, computed chunk by chunk (each equals
    its one-at-a-time twin): the longest prefix of `texts` within `token_budget` tokens in all
    (default `CTXLENS_REQUEST_TOKENS`); `.cut` says how many were read. Whole files of any
    size go through `iter_analyses` or `extract_to_parquet` instead."""
    if not texts:
        raise InputError("No sentences to analyse.")
    cut = sentences_within_budget(name, texts, device=device, dtype=dtype, budget=token_budget, progress=progress)
    records: list[Analysis] = []
    for _, chunk in iter_analyses(name, texts[:cut.n_read], device=device, batch_size=batch_size,
                                  progress=progress, dtype=dtype):
        records.extend(chunk)
    return Analyses(records, cut)


# ---------------------------------------------------------------- sentence files (both engines)

FORMATS = {".txt": "text", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".csv": "csv"}


def sentence_source(source: str | Path, fmt: str | None = None):
    """(filesystem, path, format) of a sentence file: a local path or a URI that one of
    pyarrow's filesystems reaches (file://, s3://, gs://, hdfs://); the format is `fmt`, else
    the file's suffix (FORMATS). Checked before any work, so a typo costs nothing."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    source = str(source)
    remote = "://" in source
    fmt = fmt or FORMATS.get(PurePosixPath(urlsplit(source).path if remote else source).suffix.lower())
    if fmt not in FORMATS.values():
        raise InputError(f"Cannot tell how to read {source}: name it .txt, .jsonl, .parquet or .csv, "
                         "or give its format (text, jsonl, parquet or csv).")
    try:
        fs, path = pafs.FileSystem.from_uri(source) if remote else (pafs.LocalFileSystem(), str(Path(source).resolve()))
        kind = fs.get_file_info(path).type
    except (pa.ArrowException, OSError) as exc:  # an unknown scheme, no credentials, no network
        raise InputError(f"Cannot open {source}: {exc}") from exc
    if kind == pafs.FileType.NotFound:
        raise InputError(f"{source} does not exist.")
    if kind != pafs.FileType.File:
        raise InputError(f"{source} is not a file.")
    return fs, path, fmt


def require_field(names: Sequence[str], field: str, source: str) -> None:
    if field not in names:
        raise InputError(f"{source} has no field '{field}' (it has {', '.join(names[:12]) or 'none'}): "
                         "name the one that holds the sentences.")


def clean_sentences(values: Sequence, source: str) -> list[str]:
    """Sentences as both engines number them: stripped, with blank lines and empty (null)
    values skipped, so an id is a sentence's position among the file's non-blank ones."""
    sentences = []
    for value in values:
        if value is not None and not isinstance(value, str):
            raise InputError(f"{source} holds {type(value).__name__} values where sentences should be: "
                             "name a text field.")
        if value and (value := value.strip()):
            sentences.append(value)
    return sentences


def unreadable(source: str, fmt: str, exc: BaseException) -> InputError:
    """A reader's failure (not UTF-8, not JSON, not Parquet) in one line, for both engines."""
    if isinstance(exc, UnicodeDecodeError):
        return InputError(f"{source} is not UTF-8 text.")
    return InputError(f"{source} is not a valid {fmt} file: {(str(exc).strip() or type(exc).__name__).splitlines()[0]}")


def read_sentences(source: str | Path, fmt: str | None = None, field: str = "text") -> list[str]:
    """The sentences of a file, in order (the local engine's reader; `--engine ray` reads the
    same with Ray Data's readers): text, one per line; CSV (a `sentence` column, else the
    first); JSON Lines or Parquet, the column `field`."""
    import pyarrow as pa
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    fs, path, fmt = sentence_source(source, fmt)
    source = str(source)
    try:
        if fmt == "parquet":
            require_field(pq.read_schema(path, filesystem=fs).names, field, source)
            values = pq.read_table(path, filesystem=fs, columns=[field])[field].to_pylist()
        else:
            with fs.open_input_stream(path) as stream:
                data = stream.read()
            if fmt == "jsonl":
                table = pajson.read_json(pa.BufferReader(data))
                require_field(table.column_names, field, source)
                values = table[field].to_pylist()
            elif fmt == "csv":
                values = [s.text for s in parse_csv(data)]
            else:  # as Ray Data's read_text splits them
                values = data.decode("utf-8-sig").splitlines()
    except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
        raise unreadable(source, fmt, exc) from exc
    if not (sentences := clean_sentences(values, source)):
        raise InputError(f"{source} holds no sentences.")
    return sentences


def check_request(texts: Sequence[str], target: str | None) -> None:
    """An extraction's inputs, checked before any model loads (so a typo costs nothing)."""
    if not texts:
        raise InputError("No sentences to analyse.")
    if target is not None and not (where := locate_target(texts, target)).found:
        raise InputError(where.absent_message())


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
    check_request(texts, target)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")  # a failed run leaves no half-written file
    writer, chosen, written, seen = RowGroupWriter(partial), None, 0, set()
    try:
        for start, records in iter_analyses(name, texts, device=device, batch_size=batch_size, progress=progress):
            if chosen is None:
                chosen = parse_layers(layers, records[0].hidden_states.shape[0])
            rows = word_vectors(records, start, layers=chosen, pooling=pooling, target=target)
            seen.update(rows.sentence_id.tolist())
            if len(rows):
                writer.write(arrow_table(rows))
                written += len(rows)
        writer.close()  # nothing matched (all cut off by truncation): still a readable file
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    missing = [i for i in range(len(texts)) if i not in seen]
    return ExtractSummary(written, len(texts), missing, chosen or [])
