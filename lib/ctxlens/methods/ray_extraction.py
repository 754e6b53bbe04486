"""`ctxlens embed --engine ray`: the local engine's Parquet rows (same columns, same vectors),
computed on Ray Data. Ray Data's readers read the sentence file (text, JSON Lines or Parquet,
on any filesystem pyarrow reaches) on the workers; the driver numbers the sentences as the
local engine does, a block at a time; a pool of model actors (`map_batches`, one model load
each, on a share of a GPU or on CPUs) turns batches into word-vector rows, which the driver
writes as Parquet shards in a folder while it reports progress. Local Ray by default,
`address` for a cluster. Ray is an optional extra (`pip install "ray[data]"`)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..analysis.extract import RowGroupWriter, TargetHits, arrow_table, locate_target, parse_layers, word_vectors
from ..analysis.words import Pooling
from ..errors import CtxlensError, InputError
from ..models.loading import Progress
from .extraction import ExtractSummary, clean_sentences, progress_line, require_field, sentence_source, unreadable

_BLOCK = 1024  # sentences per input block: the unit an actor takes, so also how often progress moves
_SHARD_ROWS = 100_000  # rows per Parquet shard (150 MB of 384-wide vectors)


class _Embedder:
    """A Ray Data actor: the model, loaded once, and one batch of sentences -> Arrow rows."""

    def __init__(self, name: str, device: str, layers: str, pooling: Pooling, target: str | None, tally):
        from ..models.registry import get_model

        self.name, self.device, self.layers, self.pooling, self.target = name, device, layers, pooling, target
        self.tally, self.failed = tally, None
        try:
            get_model(name, device)
        except CtxlensError as exc:  # raised from the first batch: Ray hands a constructor's error back as a traceback
            self.failed = CtxlensError(str(exc))

    def __call__(self, batch: dict) -> object:
        from ..models.registry import analyze_texts

        if self.failed:
            raise self.failed
        ids = np.asarray(batch["sentence_id"], dtype=np.int64)
        records = analyze_texts(self.name, [str(t) for t in batch["sentence"]], device=self.device, hidden_only=True)
        chosen = parse_layers(self.layers, records[0].hidden_states.shape[0])
        rows = word_vectors(records, 0, layers=chosen, pooling=self.pooling, target=self.target)
        rows.sentence_id = ids[rows.sentence_id]  # the batch's positions -> the file's sentence ids
        self.tally.add.remote(len(ids))  # sentences done, whether or not they gave rows (a target word)
        return arrow_table(rows)


class _Tally:
    """Sentences the actors have done: a Ray actor that the driver reads for its progress."""

    def __init__(self):
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n

    def get(self) -> int:
        return self.done


def _ray(address: str | None):
    try:
        import ray
    except ImportError:
        raise InputError('The Ray engine needs Ray: pip install "ray[data]==2.60.0".') from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"_node_ip_address": "127.0.0.1"}))
    return ray


def worker_resources(
    device: str | None, workers: int, cluster: dict[str, float], *, gpus_per_worker: float | None = None,
    cpus_per_worker: int | None = None, local: bool = True,
) -> tuple[str, dict[str, float]]:
    """Each model actor's device and `map_batches` resources. On CUDA (`auto` or `cuda` where
    the cluster has GPUs) an actor asks for `gpus_per_worker` of a GPU (default 1) and Ray
    shows it only its own; else CPUs: by default a local Ray's CPUs shared among the actors
    (Ray gives an actor one torch thread per CPU it asks for: one CPU per actor read 20,000
    sentences at 0.62x the local engine on 2 cores), 1 on a cluster."""
    device = (device or "auto").split(":")[0]  # cuda:1 means nothing to an actor: Ray picks its GPU
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise InputError(f"Unknown device {device!r}: use auto, cpu, cuda or mps.")
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if cluster.get("GPU", 0) > 0 and device in ("auto", "cuda") else 0.0
    if gpus_per_worker < 0:
        raise InputError("The GPUs per worker cannot be negative.")
    if gpus_per_worker > 0:
        if device not in ("auto", "cuda"):
            raise InputError(f"GPUs per worker ({gpus_per_worker:g}) need the device cuda or auto, not {device}.")
        return "cuda", {"num_gpus": gpus_per_worker, **({"num_cpus": cpus_per_worker} if cpus_per_worker else {})}
    if device == "cuda":
        raise InputError("The device cuda needs GPUs per worker above 0 (and a Ray cluster with GPUs).")
    cpus = cpus_per_worker or (max(1, int(cluster.get("CPU", 1)) // workers) if local else 1)
    return "cpu" if device == "auto" else device, {"num_cpus": cpus}


def _ours(exc: Exception) -> Exception:
    """A failed Ray task's error: ours in one line (Ray appends its retry notes), else Ray's."""
    cause = getattr(exc, "cause", None)
    return CtxlensError(str(cause).strip().splitlines()[0]) if isinstance(cause, CtxlensError) else exc


def _read(ray, source: str, fmt: str | None, field: str) -> Iterator[list[str]]:
    """The file's sentences in order, a block at a time, as the local engine reads them: Ray
    Data's readers read the file on the workers, and the blocks stream by the driver."""
    import pyarrow as pa

    fs, path, fmt = sentence_source(source, fmt)
    if fmt == "text":  # as read_sentences reads it: utf-8-sig, splitlines, blank lines skipped
        data, column = ray.data.read_text(path, filesystem=fs, encoding="utf-8-sig"), "text"
    elif fmt == "jsonl":
        data, column = ray.data.read_json(path, filesystem=fs), field
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        require_field(pq.read_schema(path, filesystem=fs).names, field, source)
        data, column = ray.data.read_parquet(path, filesystem=fs, columns=[field]), field
    else:
        raise InputError(f"The Ray engine reads text, JSON Lines or Parquet; read {source} with the local engine.")
    data.context.execution_options.preserve_order = True  # an id is a position in the file
    data.context.enable_progress_bars = False
    try:
        for block in data.iter_batches(batch_size=None, batch_format="pyarrow"):
            require_field(block.column_names, column, source)
            yield clean_sentences(block[column].to_pylist(), source)
    except ray.exceptions.RayTaskError as exc:  # a reader's failure
        if isinstance(exc.cause, (UnicodeDecodeError, json.JSONDecodeError, pa.ArrowInvalid)):
            raise unreadable(source, fmt, exc.cause) from None
        raise _ours(exc) from None


def _numbered(ray, blocks: Iterable[list[str]], target: str | None) -> tuple[list, int]:
    """The sentences as object-store blocks of (sentence_id, sentence) rows, and their count.
    The driver numbers the blocks as they stream by (Ray Data has no row index; `zip` with a
    range is deprecated), holding one at a time, and checks the target word in the same pass,
    before any model loads."""
    import pyarrow as pa

    word = locate_target([], target).target if target else None  # the word itself, checked first
    refs, n, found, inside = [], 0, False, {}
    for sentences in blocks:
        if word:
            where = locate_target(sentences, word)
            found, inside = found or where.found, inside | dict.fromkeys(where.inside_words)
        for start in range(0, len(sentences), _BLOCK):
            chunk = sentences[start:start + _BLOCK]
            ids = pa.array(range(n + start, n + start + len(chunk)), pa.int64())
            refs.append(ray.put(pa.table({"sentence_id": ids, "sentence": chunk})))
        n += len(sentences)
    if word and n and not found:
        raise InputError(TargetHits(word, [], list(inside)).absent_message())
    return refs, n


def _write(ray, rows, out: Path, total: int, tally, progress: Progress | None) -> tuple[int, set, set]:
    """Drain the actors' rows into Parquet shards in `out`, reporting sentences done; returns
    (rows, sentence ids seen, layers). The driver writes, not `write_parquet`: `out` is a
    folder on this machine even with a cluster (write_parquet writes on each worker's disk),
    and reading the stream gives the progress and the summary without reading shards back."""

    report = progress or (lambda fraction, message: None)
    started, writer, shards, in_shard, written, seen, layers = time.monotonic(), None, 0, 0, 0, set(), set()
    report(0.0, progress_line(0, total, started))
    try:
        for table in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
            if not table.num_rows:
                continue
            if writer is None or in_shard >= _SHARD_ROWS:
                if writer is not None:
                    writer.close()
                writer = RowGroupWriter(out / f"part-{shards:05d}.parquet")
                shards, in_shard = shards + 1, 0
            writer.write(table)
            in_shard, written = in_shard + table.num_rows, written + table.num_rows
            seen.update(table["sentence_id"].to_pylist())
            layers.update(table["layer"].unique().to_pylist())
            if (done := ray.get(tally.get.remote())) < total:  # all done: said once, below
                report(done / total, progress_line(done, total, started))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # nothing matched (all cut off by truncation): still a readable folder
        RowGroupWriter(out / "part-00000.parquet").close()
    report(1.0, progress_line(total, total, started))
    return written, seen, layers


def extract_with_ray(
    out: str | Path, name: str, source: str | Path | Sequence[str], *, fmt: str | None = None, field: str = "text",
    target: str | None = None, layers: str = "all", pooling: Pooling = "mean", batch_size: int = 16,
    device: str | None = None, workers: int = 1, address: str | None = None,
    gpus_per_worker: float | None = None, cpus_per_worker: int | None = None, progress: Progress | None = None,
) -> ExtractSummary:
    """Write the word vectors of the sentences in `source` (a path or URI, see `read_sentences`,
    or the sentences themselves) as Parquet shards in the new folder `out` (the columns of
    `extract_to_parquet`), with `workers` model actors (`worker_resources`), reporting on
    `progress`."""
    if batch_size < 1 or workers < 1:
        raise InputError("The batch size and the number of workers must be at least 1.")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists: give a new folder for the shards.")
    ray = _ray(address)
    device, resources = worker_resources(device, workers, ray.cluster_resources(), gpus_per_worker=gpus_per_worker,
                                         cpus_per_worker=cpus_per_worker, local=address is None)
    file = isinstance(source, (str, Path))
    refs, total = _numbered(ray, _read(ray, str(source), fmt, field) if file else [list(source)], target)
    if not total:
        raise InputError(f"{source} holds no sentences." if file else "No sentences to analyse.")
    tally = ray.remote(num_cpus=0)(_Tally).remote()
    rows = ray.data.from_arrow_refs(refs).map_batches(
        _Embedder, fn_constructor_args=(name, device, layers, pooling, target, tally), batch_size=batch_size,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), **resources,
    )
    rows.context.enable_progress_bars = False  # ours instead, on `progress`
    rows.context.raise_original_map_exception = True  # our errors come back as themselves
    partial = out.with_name(out.name + ".partial")  # a failed run leaves no half-written folder
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        written, seen, chosen = _write(ray, rows, partial, total, tally, progress)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, ray.exceptions.RayTaskError):
            raise _ours(exc) from None
        raise
    if out.exists():
        out.rmdir()  # empty (checked above)
    partial.replace(out)
    return ExtractSummary(written, total, [i for i in range(total) if i not in seen], sorted(chosen))
