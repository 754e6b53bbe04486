"""`ctxlens embed --engine ray`: the local engine's Parquet (same columns, same vectors),
computed on Ray Data. Sentences become a dataset of (sentence_id, sentence) rows; a pool of
model actors (`map_batches`, one model load per actor) turns each batch into word-vector rows;
the rows are written as Parquet shards in a folder. Local Ray by default, `address` for a
cluster. Ray is an optional extra (`pip install "ray[data]"`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..analysis.extract import arrow_table, parse_layers, word_vectors
from ..analysis.words import Pooling
from ..errors import InputError
from .extraction import ExtractSummary, check_request


class _Embedder:
    """A Ray Data actor: the model, loaded once, and one batch of sentences -> Arrow rows."""

    def __init__(self, name: str, device: str | None, layers: str, pooling: Pooling, target: str | None):
        from ..models.registry import get_model

        self.name, self.device, self.layers, self.pooling, self.target = name, device, layers, pooling, target
        get_model(name, device)

    def __call__(self, batch: dict) -> object:
        from ..models.registry import analyze_texts

        ids = np.asarray(batch["sentence_id"], dtype=np.int64)
        records = analyze_texts(self.name, [str(t) for t in batch["sentence"]], device=self.device, hidden_only=True)
        chosen = parse_layers(self.layers, records[0].hidden_states.shape[0])
        rows = word_vectors(records, 0, layers=chosen, pooling=self.pooling, target=self.target)
        rows.sentence_id = ids[rows.sentence_id]  # the batch's positions -> the file's sentence ids
        return arrow_table(rows)


def _ray(address: str | None):
    try:
        import ray
    except ImportError:
        raise InputError('The Ray engine needs Ray: pip install "ray[data]==2.60.0".') from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"_node_ip_address": "127.0.0.1"}))
    return ray


def extract_with_ray(
    out: str | Path, name: str, texts: Sequence[str], *, target: str | None = None, layers: str = "all",
    pooling: Pooling = "mean", batch_size: int = 16, device: str | None = None, workers: int = 1,
    address: str | None = None, cpus_per_worker: int | None = None,
) -> ExtractSummary:
    """Write the word vectors of `texts` as Parquet shards in the folder `out` (the columns
    of `extract_to_parquet`), with `workers` model actors of `cpus_per_worker` CPUs each
    (default: a local Ray's CPUs shared among them, else 1)."""
    check_request(texts, target)
    if batch_size < 1 or workers < 1:
        raise InputError("The batch size and the number of workers must be at least 1.")
    ray = _ray(address)
    if cpus_per_worker is None:
        # Ray gives an actor as many torch threads as CPUs it asks for: one CPU per actor read
        # 20,000 sentences at 0.62x the local engine on 2 cores.
        cpus_per_worker = max(1, int(ray.cluster_resources().get("CPU", 1)) // workers) if address is None else 1
    sentences = ray.data.from_items([{"sentence_id": i, "sentence": t} for i, t in enumerate(texts)])
    rows = sentences.map_batches(
        _Embedder, fn_constructor_args=(name, device, layers, pooling, target),
        batch_size=batch_size, batch_format="numpy", concurrency=workers, num_cpus=cpus_per_worker,
    )
    out = Path(out)
    rows.write_parquet(str(out))
    import pyarrow.parquet as pq

    table = pq.read_table(str(out), columns=["sentence_id", "layer"])
    seen = set(table["sentence_id"].to_pylist())
    chosen = sorted(set(table["layer"].to_pylist()))
    return ExtractSummary(table.num_rows, len(texts), [i for i in range(len(texts)) if i not in seen], chosen)
