"""The method registry: what each method declares it needs is what it actually needs.

For every tiny family and every prediction method, the registry's verdict (applies or not)
is compared with running the method: one that applies runs, one that does not refuses with
CapabilityMissing. So a declaration that drifts from the code fails here."""

import pytest

import ctxlens.methods  # noqa: F401 - registers every method
from ctxlens.backends.hf import analyze
from ctxlens.errors import CapabilityMissing
from ctxlens.methods.ablation import HEAD, Knockout
from ctxlens.methods import registry as R
from ctxlens.models import catalog as cat
from ctxlens.models.loading import load_hf, spec_for

FAMILIES = ["bert-mlm", "bert-nsp", "bert-bare", "bert-qa", "roberta", "distilbert", "gpt2", "llama"]



def _explained(lm):
    """(subject, target) for whichever trained head `lm` has; a model with none gets a
    token target, which the method must refuse."""
    from ctxlens.methods import attribution, targets

    if lm.spec.can(cat.QA_SPANS):
        subj = attribution.subject(lm, "Who sat?", "The cat sat on the mat.")
        return subj, targets.qa_target(subj.record)
    if lm.spec.can(cat.NSP):
        subj = attribution.subject(lm, "The cat sat.", "It purred.")
        return subj, targets.nsp_target()
    subj = attribution.subject(lm, "The cat sat on the [MASK]." if lm.tokenizer.mask_token else "The cat sat on the")
    if lm.spec.can(cat.MLM) or lm.spec.can(cat.NEXT_TOKEN):
        return subj, targets.prediction_target(lm, subj.record)
    return subj, targets.Target(targets.TOKEN, "x", 0, 1)


def _occurrences(lm):
    from ctxlens.analysis.polysemy import LabeledSentence, collect_target_vectors

    sentences = [LabeledSentence("the bank lent money", "money"), LabeledSentence("my bank pays", "money"),
                 LabeledSentence("the river bank", "river"), LabeledSentence("a muddy bank", "river")]
    return collect_target_vectors(lm.analyze([s.text for s in sentences]), sentences, "bank"), sentences


# How to call each method on a loaded model: the pages call them the same way.
CALLS = {
    "fill-mask": lambda lm: R.method("fill-mask").run(lm, "The cat [MASK] on the mat."),
    "logit-lens": lambda lm: R.method("logit-lens").run(lm, analyze(lm, "The cat sat [MASK]."), [1]),
    "nsp": lambda lm: R.method("nsp").run(lm, "The cat sat.", "It purred."),
    "next-token": lambda lm: R.method("next-token").run(lm, "The cat sat on the"),
    "generation": lambda lm: "".join(R.method("generation").run(lm, "The cat", max_new_tokens=3)),
    "few-shot": lambda lm: R.method("few-shot").run(lm, "antonyms", [0, 1]),
    "qa-spans": lambda lm: R.method("qa-spans").run(lm, "Who sat?", "The cat sat on the mat."),
    "classify-sequence": lambda lm: R.method("classify-sequence").run(lm, "The cat sat."),
    "classify-tokens": lambda lm: R.method("classify-tokens").run(lm, "The cat sat."),
    "corruption": lambda lm: R.method("corruption").run(lm, "The cat sat on the mat.", seed=0),
    "integrated-gradients": lambda lm: R.method("integrated-gradients").run(lm, *_explained(lm), steps=4),
    "gradient-x-input": lambda lm: R.method("gradient-x-input").run(lm, *_explained(lm)),
    "occlusion": lambda lm: R.method("occlusion").run(lm, *_explained(lm)),
    "ablation": lambda lm: R.method("ablation").run(lm, *_explained(lm), Knockout(HEAD, 0, 0)),
    "head-importance": lambda lm: R.method("head-importance").run(lm, *_explained(lm)),
    "cross-check": lambda lm: R.method("cross-check").run(lm, *_explained(lm), steps=4),
    "sentence-order": lambda lm: R.method("sentence-order").run(lm, "The cat sat.", "It purred."),
    "sense-attribution": lambda lm: R.method("sense-attribution").run(
        lm, _occurrences(lm)[0], _occurrences(lm)[1][2].text, 2, 1, steps=4),
}


@pytest.fixture(scope="module")
def models(tiny_models):
    return {kind: load_hf(spec_for(tiny_models[kind]), device="cpu") for kind in FAMILIES}


def test_every_method_declares_known_capabilities_and_a_runner():
    assert set(CALLS) <= set(R.METHODS)
    for m in R.METHODS.values():
        assert m.needs and callable(m.run), m.name
        assert all(c in cat.CAPABILITY_LABELS for group in m.needs for c in group), m.name


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_method_runs_exactly_where_the_registry_says_it_applies(models, kind, name):
    lm = models[kind]
    if R.method(name).applies(lm.spec):
        CALLS[name](lm)  # raises if the declaration promised too much
    else:
        with pytest.raises(CapabilityMissing):
            CALLS[name](lm)
        reason = R.method(name).missing(lm.spec)
        assert lm.spec.key in reason and R.method(name).title in reason


def test_available_splits_a_page_s_methods_and_says_why():
    minilm = cat.CATALOG["all-MiniLM-L6-v2"]
    usable, why_not = R.available(["fill-mask", "corruption", "attention-maps", "nsp"], minilm)
    assert [m.name for m in usable] == ["corruption", "attention-maps"]
    assert set(why_not) == {"Fill the [MASK]", "Next-sentence prediction"}
    assert "bert-base-uncased" in why_not["Fill the [MASK]"]  # where to go instead
    assert "all-MiniLM-L6-v2" in why_not["Next-sentence prediction"]


def test_models_for_offers_the_models_a_page_can_serve():
    assert "all-MiniLM-L6-v2" not in R.models_for(["fill-mask"])
    assert "bert-base-uncased" in R.models_for(["fill-mask"])
    elmo = R.models_for(["elmo-layers"])
    assert elmo and all(cat.CATALOG[k].family.value == "elmo" for k in elmo)
    assert set(R.models_for(["attention-maps"])) >= {"all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"}
    assert not set(R.models_for(["attention-maps"])) & set(elmo)


def test_an_unknown_method_or_capability_is_refused():
    with pytest.raises(KeyError, match="no method"):
        R.method("telepathy")
    with pytest.raises(ValueError, match="unknown capabilities"):
        R.register("bad", "Bad", "", ["no-such-head"], lambda: None)
    assert "bad" not in R.METHODS
