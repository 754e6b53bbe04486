"""XLNet's permutation language modelling: predict one position from the positions before it
in a chosen factorisation order, through transformers' `perm_mask` and `target_mapping`.

The masks are `analysis.permutation`'s; this module loads an XLNet LM head model, tokenises
(XLNet's tokenizer appends <sep> <cls> at the END: the order covers the sentence's own tokens,
and the two specials are context every position may see) and reads the query stream's
prediction at the chosen position.

No capability in `models.catalog` says "an XLNet": the method declares the LM head it needs
(`next-token`, which `spec_from_config` gives an XLNetLMHeadModel) and refuses any other
model type itself, with CapabilityMissing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.permutation import check_order, visible_before, xlnet_perm_mask, xlnet_target_mapping
from ..backends.hf import LoadedModel
from ..errors import CapabilityMissing, InputError
from ..models import catalog as cat
from ..models.catalog import ModelSpec
from ..models.loading import Progress, fetch, resolve_local, spec_for
from ..record import Family
from ..validate import clean_text
from .common import Filler, check_top_k, display_ids, top_fillers
from .registry import check, register

XLNET_KEY = "xlnet-base-cased"
# Not in the catalog (its pickers would offer it to next-token views, which it does not serve):
# the spec this module downloads and loads it by. Its key is the hub id, which is what
# `spec_for` calls it once it is in the local cache.
XLNET_SPEC = ModelSpec(
    key="xlnet/xlnet-base-cased", family=Family.CAUSAL_LM, source="hf:xlnet/xlnet-base-cased",
    capabilities=frozenset({cat.PERMUTATION_LM}), layers=12, heads=12, size_mb=467, licence="MIT",
    description="XLNet-base (cased): 12 layers, trained by permutation language modelling.",
)
_ALIASES = {XLNET_KEY, XLNET_SPEC.key}
MAX_TOKENS = 64  # one sentence: past this a mask matrix is unreadable and the view says so


def xlnet_spec(name: str) -> ModelSpec:
    """The spec of `name`: xlnet-base-cased (by either name), or a local folder / cached hub id."""
    name = (name or "").strip()
    return XLNET_SPEC if name in _ALIASES else spec_for(name)


def load_xlnet(name: str = XLNET_KEY, device: str | None = None, progress: Progress | None = None,
               dtype: str | None = None) -> LoadedModel:
    """The loaded XLNet (once per process, in `models.registry`): xlnet-base-cased is downloaded
    first when it is not in the local cache (ModelUnavailable offline); CapabilityMissing when
    `name` is not an XLNet LM."""
    from ..models.registry import get_model

    spec = xlnet_spec(name)
    if spec is XLNET_SPEC and resolve_local(spec.source) is None:
        fetch(spec, progress)  # into the hub cache, where spec_for finds it from now on
    lm = get_model(spec.key, device, progress, dtype)
    require_xlnet(lm)
    return lm


def require_xlnet(lm) -> None:
    """CapabilityMissing unless `lm` is an XLNet with its LM head (two streams, perm_mask)."""
    check("permutation-lm", lm.spec)
    kind = getattr(getattr(getattr(lm, "model", None), "config", None), "model_type", "")
    if kind != "xlnet":
        raise CapabilityMissing(
            f"Permutation language modelling needs XLNet's two-stream attention (an XLNetLMHeadModel such as "
            f"{XLNET_KEY}); {lm.spec.key} is {'a ' + kind if kind else 'not a Hugging Face'} model.")


@dataclass(frozen=True)
class XLNetTokens:
    tokens: tuple[str, ...]  # the sentence's own tokens, as shown: what an order permutes
    positions: tuple[int, ...]  # where each of them stands in the model's input
    input_ids: tuple[int, ...]  # the whole input, <sep> <cls> included
    token_type_ids: tuple[int, ...] | None

    @property
    def length(self) -> int:
        return len(self.input_ids)


def xlnet_tokens(lm: LoadedModel, text: str) -> XLNetTokens:
    """The sentence as XLNet reads it; the order's positions are its non-special tokens."""
    text = clean_text(text, "sentence")
    enc = lm.tokenizer(text, return_special_tokens_mask=True)
    ids, special = list(enc["input_ids"]), list(enc["special_tokens_mask"])
    positions = tuple(i for i, s in enumerate(special) if not s)
    if not positions:
        raise InputError("The sentence has no tokens besides XLNet's special ones: type some words.")
    if len(positions) > MAX_TOKENS:
        raise InputError(f"The sentence has {len(positions)} tokens; this view reads one sentence of at most "
                         f"{MAX_TOKENS} (a longer order's masks are unreadable). Shorten it.")
    types = enc.get("token_type_ids")
    return XLNetTokens(display_ids(lm, [ids[p] for p in positions]), positions, tuple(ids),
                       None if types is None else tuple(types))


@dataclass(frozen=True)
class OrderPrediction:
    tokens: tuple[str, ...]  # the sentence's tokens (what the order permutes)
    order: tuple[int, ...]  # indices into `tokens`, in the order they are predicted
    target: int  # index into `tokens` of the predicted position
    visible: tuple[int, ...]  # what the target is predicted from (z_<t), in order
    candidates: tuple[Filler, ...]  # the top-k tokens at the target
    actual: Filler  # the sentence's own token there, with its probability
    logits: np.ndarray  # [V] float32, the query stream's logits at the target
    perm_mask: np.ndarray  # [1, L, L] as passed to the model (1 = may not attend)
    target_mapping: np.ndarray  # [1, 1, L]

    @property
    def actual_rank(self) -> int:
        """1 = the model's top guess is the sentence's own token."""
        return int((self.logits > self.logits[self.actual.token_ids[0]]).sum()) + 1


def predict_in_order(lm: LoadedModel, text: str, order, target: int, top_k: int = 10) -> OrderPrediction:
    """XLNet's prediction at token `target` of `text` when the tokens are predicted in `order`
    (indices into the sentence's tokens): its query stream sees exactly the tokens before the
    target in the order (and <sep> <cls>), never the target's own token."""
    require_xlnet(lm)
    check_top_k(top_k)
    seq = xlnet_tokens(lm, text)
    order = check_order(order, len(seq.tokens))
    visible = visible_before(order, target)
    perm = xlnet_perm_mask(order, seq.length, seq.positions)
    mapping = xlnet_target_mapping(seq.positions[target], seq.length)
    logits = _query_logits(lm, seq, perm, mapping)
    probs = torch.softmax(logits, -1)
    actual_id = seq.input_ids[seq.positions[target]]
    actual = Filler(display_ids(lm, [actual_id])[0], (actual_id,), float(probs[actual_id]))
    return OrderPrediction(seq.tokens, order, int(target), visible, top_fillers(lm, probs, top_k), actual,
                           logits.numpy(), perm, mapping)


def _query_logits(lm: LoadedModel, seq: XLNetTokens, perm: np.ndarray, mapping: np.ndarray) -> torch.Tensor:
    """[V] float32 on the CPU: the LM head over the query stream at the one target."""
    on = {"device": lm.device}
    inputs = {"input_ids": torch.tensor([seq.input_ids], **on),
              "perm_mask": torch.from_numpy(perm).to(dtype=lm.model.dtype, **on),
              "target_mapping": torch.from_numpy(mapping).to(dtype=lm.model.dtype, **on)}
    if seq.token_type_ids is not None:
        inputs["token_type_ids"] = torch.tensor([seq.token_type_ids], **on)
    with torch.inference_mode():
        out = lm.model(**inputs, use_mems=False, return_dict=True)
    return out.logits[0, 0].float().cpu()


register("permutation-lm", "Permutation LM (XLNet)",
         "XLNet's prediction at one position from the positions before it in a chosen factorisation order",
         [cat.PERMUTATION_LM], predict_in_order, top_k=10)
