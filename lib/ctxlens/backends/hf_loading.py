"""Building Hugging Face models from a local folder: the transformers side of loading.

`models/loading.py` finds the folder (package, cache, hub), picks the device and precision and
turns failures into `ModelUnavailable`; this module is what it calls to read a config, convert
an embedded GGUF file, and build the model and tokenizer with our eager-capable attention.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from ..errors import ModelUnavailable
from ..models import catalog as cat
from ..models.catalog import ModelSpec
from ..record import Family
from .architectures import position_offset, untrained_capabilities
from .capture import ATTN_IMPLEMENTATION
from .hf import LoadedModel


def read_config(folder: Path):
    """The model's config (raises what transformers raises when it cannot be read)."""
    return tf.AutoConfig.from_pretrained(str(folder))


def is_decoder_only(config) -> bool:
    """A model type transformers knows as a causal LM and not as a masked LM."""
    kind = getattr(config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def read_gguf(folder: Path, filename: str):
    """(model, tokenizer) from a GGUF file (slow: de-quantisation)."""
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
    model = tf.AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename)
    return model, tokenizer


def save_dequantised(model, tokenizer, folder: Path) -> None:
    """Save a GGUF-loaded model as plain safetensors."""
    # A GGUF-loaded model refuses to save while it still carries its quantiser.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _head_class(spec: ModelSpec):
    if spec.can(cat.QA_SPANS):
        return tf.AutoModelForQuestionAnswering
    if spec.family is Family.CAUSAL_LM:
        return tf.AutoModelForCausalLM if spec.can(cat.NEXT_TOKEN) or spec.can(cat.PERMUTATION_LM) else tf.AutoModel
    if spec.can(cat.NSP) or spec.can(cat.SOP):
        return tf.AutoModelForPreTraining
    if spec.can(cat.MLM):
        return tf.AutoModelForMaskedLM
    if spec.can(cat.SEQ_CLASS):
        return tf.AutoModelForSequenceClassification
    if spec.can(cat.TOKEN_CLASS):
        return tf.AutoModelForTokenClassification
    return tf.AutoModel


def read_weights(spec: ModelSpec, folder: Path, dtype: torch.dtype):
    """(model, tokenizer, loading info) with our eager attention (attentions, queries and keys
    exist), safetensors only; raises what transformers raises."""
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
    model, info = _head_class(spec).from_pretrained(
        str(folder), attn_implementation=ATTN_IMPLEMENTATION, dtype=dtype,
        use_safetensors=True, output_loading_info=True,
    )
    _ask_for_segments(tokenizer, model.config)
    return model, tokenizer, info


def _ask_for_segments(tokenizer, config) -> None:
    """Make the tokenizer return token_type_ids when the model has segment embeddings.

    Transformers 5 dropped them from the default outputs of ALBERT's (and Funnel's, RemBERT's…)
    tokenizer (huggingface/transformers#48128): a pair then reads as one segment, and the
    sentence-order head scores a text it was never trained on.
    """
    names = list(getattr(tokenizer, "model_input_names", ()))
    if (getattr(config, "type_vocab_size", 0) or 0) > 1 and names and "token_type_ids" not in names:
        tokenizer.model_input_names = [*names[:1], "token_type_ids", *names[1:]]


def loaded_model(spec: ModelSpec, model, tokenizer, info: dict, device: str, dtype: torch.dtype,
                 folder: Path) -> LoadedModel:
    """The backend over what `read_weights` returned, on `device`, claiming only trained heads."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelUnavailable(spec.key, "it has no fast tokenizer (character offsets are needed)")
    spec = _drop_untrained_heads(spec, model.config, info)
    model.to(device).eval()
    return LoadedModel(spec, model, tokenizer, device, dtype, _max_tokens(model, tokenizer), folder)


def _drop_untrained_heads(spec: ModelSpec, config, info: dict) -> ModelSpec:
    """A head whose weights were missing from the checkpoint is random: never claim it."""
    dropped = untrained_capabilities(config, info.get("missing_keys", []))
    return cat.with_capabilities(spec, set(spec.capabilities) - dropped)


def _max_tokens(model, tokenizer) -> int:
    """The longest input the model accepts: its position table, or the tokenizer's limit."""
    config = model.config
    limits = [
        getattr(config, name, None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length")
    ]
    limits = [int(v) for v in limits if isinstance(v, int) and v > 0]
    if limits:  # e.g. RoBERTa's position ids start after padding_idx: its first rows are never used
        limits = [limits[0] - position_offset(config)]
    if 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limits.append(int(tokenizer.model_max_length))
    return min(limits) if limits else 512


def read_tokenizer(folder: str | Path):
    """A tokenizer saved by `save_pretrained` (the classroom server ships its model's)."""
    return tf.AutoTokenizer.from_pretrained(str(folder))
