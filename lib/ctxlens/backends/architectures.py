"""What differs between Hugging Face architectures, one row per `config.model_type`.

Everything else (the forward, hidden states, attention, queries and keys through
`capture.py`) is the same code for every architecture. A row says where the final norm and the
MLM head live (for the logit lens), how far the position table is offset, and which modules
hold each task head's weights (a head the checkpoint has no weights for is random, so its
capability is not claimed). A model type with no row still runs every view that needs only
the forward; the logit lens then names the missing row, and heads are found by name.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from ..errors import CapabilityMissing
from ..models import catalog as cat
from .capture import keeping_heads


@dataclass(frozen=True)
class Architecture:
    final_norm: str | None = None  # path from the full model to the norm after the last layer
    mlm_head: str | None = None  # path from the full model to the MLM head (hidden → logits)
    # Rows of the position table never used: RoBERTa's ids start after padding_idx.
    position_offset_from_pad: bool = False
    # Heads present in the weights: the modules (names in the loaded head class, e.g.
    # BertForPreTraining) whose weights make each task head. A weight of one of them missing
    # from the checkpoint means the head is random. None: found by name (`_HEADS_BY_NAME`).
    lm_weights: tuple[str, ...] | None = None  # the MLM or next-token head
    nsp_weights: tuple[str, ...] | None = None  # next-sentence prediction
    sop_weights: tuple[str, ...] | None = None  # sentence-order prediction (ALBERT)
    qa_weights: tuple[str, ...] | None = None  # extractive QA spans
    classifier_weights: tuple[str, ...] | None = None  # sequence and token classification
    # For MLP ablation: the list of layers (path from the base model) and, in each layer, the
    # module whose output is all the MLP adds to the residual stream.
    layers: str | None = None
    mlp: str | None = None


_BERT = Architecture(
    layers="encoder.layer", mlp="output.dense",  # BertOutput: LayerNorm(dense(mlp) + residual)
    mlm_head="cls.predictions", lm_weights=("cls.predictions",),
    nsp_weights=("bert.pooler", "cls.seq_relationship"), qa_weights=("qa_outputs",),
    classifier_weights=("bert.pooler", "classifier"),  # the sequence classifier reads the pooler
)
_ROBERTA = Architecture(
    layers="encoder.layer", mlp="output.dense", mlm_head="lm_head", position_offset_from_pad=True, lm_weights=("lm_head",),
    qa_weights=("qa_outputs",), classifier_weights=("classifier",),
)
_LLAMA = Architecture(final_norm="model.norm", lm_weights=("lm_head",), layers="layers", mlp="mlp")

ARCHITECTURES: dict[str, Architecture] = {
    "bert": _BERT,
    # ALBERT: one layer's weights serve every layer, so no per-layer MLP to knock out (no
    # `layers`); its sentence-order head reads the pooler, as BERT's next-sentence head does.
    "albert": Architecture(
        mlm_head="predictions", lm_weights=("predictions",), sop_weights=("albert.pooler", "sop_classifier"),
        qa_weights=("qa_outputs",), classifier_weights=("albert.pooler", "classifier"),
    ),
    "electra": Architecture(
        layers="encoder.layer", mlp="output.dense", mlm_head="generator_predictions", lm_weights=("generator_predictions", "generator_lm_head"),
        qa_weights=("qa_outputs",), classifier_weights=("classifier",),
    ),
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "camembert": _ROBERTA,
    "distilbert": Architecture(  # see mlm_head(): three modules before vocab_projector
        layers="transformer.layer", mlp="ffn", mlm_head="vocab_projector",
        lm_weights=("vocab_transform", "vocab_layer_norm", "vocab_projector"),
        qa_weights=("qa_outputs",), classifier_weights=("pre_classifier", "classifier"),
    ),
    "gpt2": Architecture(final_norm="transformer.ln_f", lm_weights=("lm_head",), layers="h", mlp="mlp"),
    "gpt_neox": Architecture(final_norm="gpt_neox.final_layer_norm", lm_weights=("lm_head",),
                             layers="layers", mlp="mlp"),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
}


# Which capabilities each head column carries, and, for a model type with no row (or a column
# left None), the substrings a missing weight's name is tested for instead.
_HEAD_CAPABILITIES = {
    "lm_weights": (cat.MLM, cat.NEXT_TOKEN, cat.PERMUTATION_LM),
    "nsp_weights": (cat.NSP,),
    "sop_weights": (cat.SOP,),
    "qa_weights": (cat.QA_SPANS,),
    "classifier_weights": (cat.SEQ_CLASS, cat.TOKEN_CLASS),
}
_HEADS_BY_NAME = {
    "lm_weights": ("cls.predictions", "lm_head", "vocab_", "predictions."),
    "nsp_weights": ("seq_relationship",),
    "sop_weights": ("sop_classifier",),
    "qa_weights": ("qa_outputs",),
    "classifier_weights": ("classifier",),
}


def architecture(config) -> Architecture | None:
    return ARCHITECTURES.get(getattr(config, "model_type", ""))


def module_at(model: torch.nn.Module, path: str | None):
    module = model
    for part in (path or "").split("."):
        module = getattr(module, part, None) if part else None
    return module


def final_norm(model) -> torch.nn.Module | None:
    row = architecture(model.config)
    return module_at(model, row.final_norm) if row and row.final_norm else None


def mlm_head(model):
    """The MLM head as a function hidden → logits, through its own transform and norm."""
    row = architecture(model.config)
    if row is None or row.mlm_head is None:
        return None
    if getattr(model.config, "model_type", "") == "distilbert":
        m = model
        if not hasattr(m, "vocab_projector"):
            return None
        return lambda h: m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(h))))
    return module_at(model, row.mlm_head)


def layer_modules(model) -> list[torch.nn.Module] | None:
    """The model's layers in order (see `Architecture.layers`), or None without a row for it."""
    row = architecture(model.config)
    return list(module_at(model.base_model, row.layers)) if row and row.layers else None


def mlp_modules(model) -> list[torch.nn.Module] | None:
    """Each layer's MLP output module (see `Architecture.mlp`), or None without a row for it."""
    row = architecture(model.config)
    layers = layer_modules(model) if row and row.mlp else None
    return None if layers is None else [module_at(layer, row.mlp) for layer in layers]


# Ablation state of the calling thread: a model is shared by every session, so hooks and
# replayed layers act only on the forwards of the thread that asked for them.
_local = threading.local()
_install = threading.Lock()


@contextmanager
def recording_layers(model):
    """Yields a list that fills with each layer's output, in order, during this thread's
    forwards inside the block (what `ablating(replay=...)` replays)."""
    outputs: list = []
    me = threading.get_ident()
    hooks = [layer.register_forward_hook(
        lambda module, args, output: outputs.append(output) if threading.get_ident() == me else None)
        for layer in layer_modules(model) or []]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


@contextmanager
def ablating(model, keep_heads: torch.Tensor | None, keep_mlps: torch.Tensor | None, replay: list | None = None):
    """This thread's forwards inside the block knock out heads (keep_heads [B, L, H] = 0) and
    MLPs (keep_mlps [B, L] = 0), per batch row.

    replay: the layer outputs of the same input with nothing knocked out (`recording_layers`,
    batch of one). The layers before the first one knocked out in any row then return those
    outputs instead of computing them again: the importance of every head costs about half
    the layers.
    """
    rows = len(keep_heads if keep_heads is not None else keep_mlps)
    first = _first_knocked_out(keep_heads, keep_mlps) if replay is not None else 0
    hooks = []
    try:
        if keep_mlps is not None and bool((keep_mlps == 0).any()):
            modules = mlp_modules(model)
            if modules is None:
                kind = getattr(model.config, "model_type", "?")
                raise CapabilityMissing(f"MLP ablation does not know where the MLP of model type {kind!r} is; "
                                        "add `layers` and `mlp` to its row in backends/architectures.py.")
            for layer in map(int, torch.nonzero((keep_mlps == 0).any(0)).flatten()):
                hooks.append(modules[layer].register_forward_hook(_scaled_output(keep_mlps[:, layer])))
        if first:
            _local.replay = {id(layer): _expand(out, rows) for layer, out in
                             zip(_replayable_layers(model)[:first], replay)}
        with keeping_heads(keep_heads, first) if keep_heads is not None else nullcontext():
            yield
    finally:
        _local.replay = {}
        for hook in hooks:
            hook.remove()


def _first_knocked_out(keep_heads, keep_mlps) -> int:
    layers = []
    if keep_heads is not None:
        layers += torch.nonzero((keep_heads == 0).any(-1).any(0)).flatten().tolist()
    if keep_mlps is not None:
        layers += torch.nonzero((keep_mlps == 0).any(0)).flatten().tolist()
    return min(layers, default=0)


def _replayable_layers(model) -> list[torch.nn.Module]:
    """The layers, each wrapped once so that it returns this thread's replayed output, if any."""
    layers = layer_modules(model)
    if layers is None:
        raise CapabilityMissing(f"Replaying layers needs `layers` in the row of model type "
                                f"{getattr(model.config, 'model_type', '?')!r} in backends/architectures.py.")
    with _install:
        for layer in layers:
            if "_ctxlens_replay" not in layer.__dict__:
                layer.forward = _replaying(layer, layer.forward)
                layer.__dict__["_ctxlens_replay"] = True
    return layers


def _replaying(layer, original):
    key = id(layer)

    def forward(*args, **kwargs):
        stored = getattr(_local, "replay", {}).get(key)
        return original(*args, **kwargs) if stored is None else stored

    return forward


def _expand(output, rows: int):
    """A batch-of-one layer output (a tensor, or a tuple holding tensors) repeated to `rows`."""
    if isinstance(output, torch.Tensor):
        return output.expand(rows, *output.shape[1:])
    if isinstance(output, tuple):
        return tuple(_expand(o, rows) if isinstance(o, torch.Tensor) and o.shape[:1] == (1,) else o for o in output)
    return output


def _scaled_output(scale: torch.Tensor):
    me = threading.get_ident()

    def hook(module, args, output):
        if threading.get_ident() != me:  # another session's forward on the shared model
            return None
        return output * scale.to(output).view(-1, *([1] * (output.dim() - 1)))

    return hook


def position_offset(config) -> int:
    row = architecture(config)
    if row is not None and row.position_offset_from_pad:
        return (getattr(config, "pad_token_id", 1) or 1) + 1
    return 0


def untrained_capabilities(config, missing_keys) -> set[str]:
    """The capabilities whose head has a weight in `missing_keys` (the loading report's
    parameters not found in the checkpoint, so initialised at random)."""
    row = architecture(config)
    dropped: set[str] = set()
    for column, capabilities in _HEAD_CAPABILITIES.items():
        modules = getattr(row, column) if row is not None else None
        if modules is None:
            missing = any(part in key for key in missing_keys for part in _HEADS_BY_NAME[column])
        else:
            missing = any(key == m or key.startswith(m + ".") for key in missing_keys for m in modules)
        if missing:
            dropped.update(capabilities)
    return dropped
