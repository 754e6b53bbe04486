"""Methods over hidden states of many sentences or layers. Their arithmetic is pure and lives
in `analysis/` (polysemy, contextuality, layers, mix); the records come from
`methods.extraction` (sentence lists) or the registry (one sentence)."""

from __future__ import annotations

from ..analysis.contextuality import contextuality_report
from ..analysis.layers import word_layers
from ..analysis.polysemy import collect_target_vectors
from ..models import catalog as cat
from .registry import register

register("polysemy", "Polysemy lab", "the same word across sentences, per layer: projections, cosines and how well "
         "its senses separate", [cat.HIDDEN], collect_target_vectors, pooling="mean")
register("contextuality", "Contextuality", "self-similarity, intra-sentence similarity and anisotropy per layer "
         "(Ethayarajh 2019)", [cat.HIDDEN], contextuality_report, pooling="mean")
register("elmo-layers", "ELMo's layers", "the character layer (context-free) and the biLSTM layers of each word",
         [cat.BILM_LAYERS], word_layers, pooling="mean")
register("layer-mix", "Scalar mix", "a task's weighted sum of the frozen layers (ELMo's mix; feature-based BERT too)",
         [cat.HIDDEN], word_layers, pooling="mean")
