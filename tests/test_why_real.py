"""Attribution on real weights: SmolLM2 on "The capital of France is" → " Paris", and the
sense attribution of MiniLM on the Polysemy lab's "bank" preset.

Measured here (float32, 64 steps, [PAD] baseline, first token kept), word scores:
  Paris:               capital 8.09, of 10.11, France 3.65, is 2.30 (completeness gap 0.02 %)
  Paris, not London:   capital 1.77, of 2.28, France 0.48, is 2.41
  occlusion (Paris, not London): The 1.08, capital 1.59, of 0.56, France 3.88
Integrated gradients from an all-[PAD] (or zero) input credits the whole template ("capital of
… is") more than France: every word moves a nonsense input toward a sentence. Removing France
is what costs Paris most against London. The printed figures go in the issue's note.
"""

import numpy as np
import pytest

from ctxlens.analysis.polysemy import collect_target_vectors, load_presets
from ctxlens.methods import attribution as A
from ctxlens.methods import targets as T
from ctxlens.methods.extraction import analyze_all
from ctxlens.methods.sense import sense_attribution
from ctxlens.models.registry import get_model

RIVER_WORDS = {"river", "ducks", "fisherman", "muddy", "overflowed", "flooded", "heron", "fish", "stream",
               "shallow", "grassy", "erosion", "creek", "canoe", "willow", "ashore", "otters", "waterline"}


@pytest.fixture(scope="module")
def smollm():
    lm = get_model("SmolLM2-135M-Instruct", "cpu")
    return lm, A.subject(lm, "The capital of France is")


def test_smollm2_paris_is_explained_completely_and_france_matters_most_against_london(smollm):
    lm, s = smollm
    paris = T.prediction_target(lm, s.record, "Paris")
    assert paris.index == int(np.argmax(s.record.acts.numpy("logits", index=(paris.position,))))  # its top token
    ig = A.integrated_gradients(lm, s, paris, "pad", steps=64)
    print("IG, Paris:", dict(zip(ig.words, np.round(ig.word_scores, 2))), f"gap {ig.relative_gap:.2%}")
    assert ig.relative_gap < 0.02 and ig.word_scores[0] == 0  # the first token is kept in the baseline
    assert (ig.word_scores[1:] > 0).all()  # every word of the template supports Paris
    against = T.prediction_target(lm, s.record, "Paris", "London")
    contrast = A.integrated_gradients(lm, s, against, "pad", steps=64)
    occluded = A.occlusion(lm, s, against)
    print("IG, Paris not London:", dict(zip(contrast.words, np.round(contrast.word_scores, 2))))
    print("occlusion, Paris not London:", dict(zip(occluded.words, np.round(occluded.word_scores, 2))))
    assert occluded.words[int(np.nanargmax(occluded.word_scores))] == "France"


def test_minilm_sense_attribution_ranks_a_river_word_first_in_most_river_sentences():
    preset = load_presets()["bank"]
    sentences = preset.sentences()
    lm = get_model("all-MiniLM-L6-v2", "cpu")
    occ = collect_target_vectors(analyze_all("all-MiniLM-L6-v2", [s.text for s in sentences], device="cpu"),
                                 sentences, "bank")
    for layer, least in ((3, 6), (6, 5)):
        firsts = []
        for i in np.flatnonzero(np.array(occ.senses) == "river"):
            result = sense_attribution(lm, occ, occ.texts[i], int(i), layer, steps=32)
            assert abs(result.completeness_gap) <= 0.02 * abs(result.value - result.baseline_value) + 1e-6
            firsts.append(result.context_ranking()[0][0])
        hits = sum(w.lower() in RIVER_WORDS for w in firsts)
        print(f"layer {layer}: a river word first in {hits} of {len(firsts)} river sentences: {firsts}")
        assert hits >= least
