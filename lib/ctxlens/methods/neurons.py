"""Per-head query and key vectors, for bertviz's neuron view.

They come from the record's "q" / "k" activations, which every Hugging Face family produces
(see backends/capture.py): Llama-style queries and keys after the rotary step, grouped keys
repeated per query head. softmax(q·kᵀ/√d + mask) reproduces the record's attention.
"""

from __future__ import annotations

from ..models import catalog as cat
from ..record import KEY, QUERY, Analysis
from .registry import register


def supports_neuron_view(lm_or_record) -> bool:
    """True for a backend (or a record) that produces queries and keys."""
    names = getattr(lm_or_record, "names", None)
    if names is None:
        names = lm_or_record.acts.available
    return QUERY in names and KEY in names


def query_key_vectors(record: Analysis, layer: int | None = None, head: int | None = None):
    """Queries and keys, each [layers, heads, tokens, head_dim] float32, or one layer's
    [1, heads, ...] / one head's [1, 1, ...] (a long input's neuron view carries just that)."""
    if not supports_neuron_view(record):
        raise ValueError(f"{record.model_key}: this model has no queries and keys to show")
    if layer is None:
        return record.acts.stack(QUERY), record.acts.stack(KEY)
    index = slice(None) if head is None else slice(head, head + 1)
    q = record.acts.numpy(QUERY, layer, index)[None]
    k = record.acts.numpy(KEY, layer, index)[None]
    return q, k


register("neuron-view", "Neuron view", "one head's queries and keys, and how their products make its attention",
         [cat.QUERIES_KEYS], query_key_vectors)
