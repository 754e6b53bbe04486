"""Why did it predict that: attribution, ablation, the cross-check and sense attribution,
each compared with an independent computation on tiny models."""

import copy

import numpy as np
import pytest
import tiny_models as tm  # the module; `tiny_models` is the fixture of folders
import torch

from ctxlens.analysis.importance import rank_agreement, sum_to_words
from ctxlens.analysis.polysemy import LabeledSentence, collect_target_vectors
from ctxlens.errors import InputError
from ctxlens.methods import ablation as AB
from ctxlens.methods import attribution as A
from ctxlens.methods import targets as T
from ctxlens.methods.crosscheck import cross_check
from ctxlens.methods.sense import sense_attribution
from ctxlens.models import registry
from ctxlens.models.loading import load_hf, spec_for


@pytest.fixture(scope="module")
def loaded(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("why")
    folders = dict(tiny_models)
    folders.update(tm.save_classifiers(root))
    return tm.loader(folders)


MASKED = "the bank of the [MASK] is wet and cold"
PROMPT = "the bank of the river is"


def case(loaded, kind):
    """(model, subject, target) for every kind of head."""
    if kind in ("bert-mlm", "roberta", "distilbert"):
        lm = loaded(kind)
        s = A.subject(lm, MASKED)
        return lm, s, T.prediction_target(lm, s.record)
    if kind in ("gpt2", "llama"):
        lm = loaded(kind)
        s = A.subject(lm, PROMPT)
        return lm, s, T.prediction_target(lm, s.record)
    if kind.startswith("qa-"):
        lm = loaded("bert-qa")
        s = A.subject(lm, "where is the bank", "the bank of the river is wet and cold")
        return lm, s, T.qa_target(s.record, part=kind)
    if kind == "nsp":
        lm = loaded("bert-nsp")
        s = A.subject(lm, "the bank of the river", "it is wet and cold")
        return lm, s, T.nsp_target()
    lm = loaded(kind)
    s = A.subject(lm, "the bank of the river is wet")
    return lm, s, T.class_target(lm, s.record, position=2 if kind == "bert-tok" else None)


KINDS = ["bert-mlm", "roberta", "distilbert", "gpt2", "llama", "qa-start", "qa-end", "qa-span", "nsp", "bert-seq", "bert-tok"]


def _plain_score(lm, ids, target, token_types=None):
    """The target's number from a plain transformers forward over `ids` (one row)."""
    inputs = {"input_ids": torch.tensor([ids])}
    if token_types is not None:
        inputs["token_type_ids"] = torch.tensor([token_types])
    with torch.no_grad():
        out = lm.model(**inputs)
    if target.kind in (T.QA_START, T.QA_END, T.QA_SPAN):
        start, end = out.start_logits[0].log_softmax(-1), out.end_logits[0].log_softmax(-1)
        return float({T.QA_START: start[target.position], T.QA_END: end[target.end],
                      T.QA_SPAN: start[target.position] + end[target.end]}[target.kind])
    if target.kind == T.NSP:
        return float(out.seq_relationship_logits[0].log_softmax(-1)[target.index])
    logits = getattr(out, "prediction_logits", None)
    logits = (out.logits if logits is None else logits)[0]
    row = logits if target.kind == T.SEQ_CLASS else logits[target.position]
    return float(row.log_softmax(-1)[target.index])


# --- integrated gradients -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_integrated_gradients_is_complete_within_2_percent_at_64_steps(loaded, kind):
    lm, s, target = case(loaded, kind)
    ig = A.integrated_gradients(lm, s, target, steps=64)
    assert ig.value == pytest.approx(_plain_score(lm, s.enc.input_ids, target, s.enc.token_type_ids), abs=1e-5)
    change = ig.value - ig.baseline_value
    assert abs(ig.completeness_gap) <= 0.02 * abs(change) + 1e-6
    assert len(ig.word_scores) == len(ig.words) and np.isfinite(ig.word_scores).all()


def test_a_gpt_style_first_token_stays_in_the_baseline_and_scores_zero(loaded):
    lm, s, target = case(loaded, "llama")
    assert A.kept_in_baseline(lm, s)[0] and not A.kept_in_baseline(lm, s)[1:].any()
    ig = A.integrated_gradients(lm, s, target, "zero", steps=64)
    assert ig.token_scores[0] == 0 and ig.relative_gap < 0.02


def test_baselines_replace_every_non_special_token(loaded):
    lm, s, target = case(loaded, "bert-mlm")
    ids = torch.tensor([s.enc.input_ids])
    embeds = lm.embed(ids).float()
    for name, token in (("mask", lm.tokenizer.mask_token_id), ("pad", lm.tokenizer.pad_token_id)):
        base = A.baseline_embeddings(lm, s, embeds, name)
        expected = torch.where(torch.tensor(s.enc.special_mask)[None, :, None], embeds,
                               lm.embed(torch.full_like(ids, token)).float())
        torch.testing.assert_close(base, expected)
    zero = A.baseline_embeddings(lm, s, embeds, "zero")
    assert (zero[0, ~s.enc.special_mask] == 0).all() and (zero[0, s.enc.special_mask] == embeds[0, s.enc.special_mask]).all()
    with pytest.raises(InputError, match="baseline"):
        A.integrated_gradients(lm, s, target, "nothing")


# --- gradient × input against finite differences ---------------------------------------------------


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "qa-span"])
def test_gradient_x_input_equals_finite_differences_in_float64(loaded, kind):
    """grad·e_i is the derivative of f when token i's embedding is scaled by (1 + t), at t = 0:
    brute force on a float64 copy of the model, central differences."""
    lm, s, target = case(loaded, kind)
    gxi = A.gradient_x_input(lm, s, target)
    model = copy.deepcopy(lm.model).double()
    ids = torch.tensor([s.enc.input_ids])
    extra = {} if s.enc.token_type_ids is None else {"token_type_ids": torch.tensor([s.enc.token_type_ids])}
    embeds = model.get_input_embeddings()(ids).detach()

    def f(e):
        with torch.no_grad():
            out = model(inputs_embeds=e, attention_mask=torch.ones_like(ids), **extra)
        heads = {"logits": getattr(out, "logits", None), "start_logits": getattr(out, "start_logits", None),
                 "end_logits": getattr(out, "end_logits", None)}
        return float(T.score({k: v for k, v in heads.items() if v is not None}, [target], [ids.shape[1]])[0])

    eps = 1e-4
    brute = []
    for i in range(ids.shape[1]):
        up, down = embeds.clone(), embeds.clone()
        up[0, i] *= 1 + eps
        down[0, i] *= 1 - eps
        brute.append((f(up) - f(down)) / (2 * eps))
    np.testing.assert_allclose(gxi.token_scores, brute, rtol=2e-3, atol=2e-6)


# --- occlusion against re-running the text without the word ---------------------------------------


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "qa-span", "nsp"])
def test_occluding_a_word_equals_rerunning_without_its_tokens(loaded, kind):
    lm, s, target = case(loaded, kind)
    occ = A.occlusion(lm, s, target)
    whole = _plain_score(lm, s.enc.input_ids, target, s.enc.token_type_ids)
    assert occ.value == pytest.approx(whole, abs=1e-5)
    word_ids = s.record.word_ids
    for w, drop in zip(occ.word_index, occ.word_scores):
        kept = word_ids != w
        moved = target.moved(kept)
        if moved is None:  # the word is what the target reads
            assert np.isnan(drop)
            continue
        ids = [i for i, k in zip(s.enc.input_ids, kept) if k]
        types = None if s.enc.token_type_ids is None else [t for t, k in zip(s.enc.token_type_ids, kept) if k]
        assert drop == pytest.approx(whole - _plain_score(lm, ids, moved, types), abs=1e-4)
    if kind == "gpt2":
        assert np.isnan(occ.word_scores[-1])  # the last word is where the next token is read


# --- words, contrast -------------------------------------------------------------------------------


def test_word_scores_are_signed_sums_of_their_pieces(loaded):
    lm = loaded("bert-mlm")
    s = A.subject(lm, "the xyz of the [MASK] playing")  # xyz and playing have several pieces
    ig = A.integrated_gradients(lm, s, T.prediction_target(lm, s.record), steps=8)
    assert max(np.bincount(s.record.word_ids[s.record.word_ids >= 0])) > 1
    for w, score in zip(ig.word_index, ig.word_scores):
        assert score == pytest.approx(float(ig.token_scores[s.record.word_ids == w].sum()), abs=1e-6)
    assert "MASK" not in ig.words  # the mask token is not a word of the text
    np.testing.assert_allclose(sum_to_words(np.array([1.0, -2.0, 3.0, 4.0]), np.array([-1, 0, 0, 1]), np.array([0, 1])),
                               [1.0, 4.0])


@pytest.mark.parametrize("method", [A.integrated_gradients, A.gradient_x_input, A.occlusion])
def test_a_contrast_scores_the_difference_of_the_two_targets(loaded, method):
    lm, s, target = case(loaded, "gpt2")
    other = int(np.argsort(s.record.acts.numpy("logits", index=(target.position,)))[-2])
    contrast = T.Target(T.TOKEN, target.label, target.index, target.position, contrast=other, contrast_label="x")
    alone = T.Target(T.TOKEN, "x", other, target.position)
    a, b, c = (method(lm, s, t) for t in (target, alone, contrast))
    np.testing.assert_allclose(c.word_scores, a.word_scores - b.word_scores, atol=2e-5, equal_nan=True)
    assert c.value == pytest.approx(a.value - b.value, abs=1e-5)


def test_targets_from_typed_tokens_and_their_messages(loaded):
    lm = loaded("gpt2")
    s = A.subject(lm, PROMPT)
    t = T.prediction_target(lm, s.record, "river", "bank")
    assert t.index == lm.tokenizer(" river")["input_ids"][0] and t.contrast_label == "␣bank"
    with pytest.raises(InputError, match="not one token"):
        T.prediction_target(lm, s.record, "riverbankzzz")
    with pytest.raises(InputError, match="contrast is the target"):
        T.prediction_target(lm, s.record, "river", "river")
    bert = loaded("bert-mlm")
    with pytest.raises(InputError, match=r"\[MASK\]"):
        T.prediction_target(bert, A.subject(bert, "no mask here").record)
    with pytest.raises(InputError, match="two tokens"):
        A.subject(loaded("gpt2"), "a")


# --- ablation --------------------------------------------------------------------------------------


def _output_projection(lm, layer):
    m = lm.model
    return {"bert": lambda: m.bert.encoder.layer[layer].attention.output.dense,
            "gpt2": lambda: m.transformer.h[layer].attn.c_proj,
            "llama": lambda: m.model.layers[layer].self_attn.o_proj,
            "distilbert": lambda: m.distilbert.transformer.layer[layer].attention.out_lin}[m.config.model_type]()


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "llama", "distilbert"])
def test_ablating_a_head_equals_zeroing_its_output_by_hand(loaded, kind):
    lm, s, target = case(loaded, kind)
    config = lm.model.config
    d = config.hidden_size // config.num_attention_heads
    layer, head = 1, 1
    result = AB.ablate(lm, s, target, AB.Knockout(AB.HEAD, layer, head))

    def zero_head(module, args):
        x = args[0].clone()
        x[..., head * d:(head + 1) * d] = 0
        return (x,)

    hook = _output_projection(lm, layer).register_forward_pre_hook(zero_head)
    try:
        by_hand = _plain_score(lm, s.enc.input_ids, target, s.enc.token_type_ids)
    finally:
        hook.remove()
    assert result.ablated_value == pytest.approx(by_hand, abs=1e-5)
    assert result.value == pytest.approx(_plain_score(lm, s.enc.input_ids, target, s.enc.token_type_ids), abs=1e-5)
    assert result.ablated_value != pytest.approx(result.value, abs=1e-7)


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2"])
def test_ablating_an_mlp_equals_a_model_without_it(loaded, kind):
    lm, s, target = case(loaded, kind)
    result = AB.ablate(lm, s, target, AB.Knockout(AB.MLP, 0))
    model = copy.deepcopy(lm.model)
    zero = lambda x: torch.zeros_like(x)  # noqa: E731
    if kind == "gpt2":
        model.transformer.h[0].mlp = type("Zero", (torch.nn.Module,), {"forward": lambda self, x: zero(x)})()
    else:
        model.bert.encoder.layer[0].output.dense = type(
            "Zero", (torch.nn.Module,), {"forward": lambda self, x: torch.zeros(*x.shape[:-1], config.hidden_size)})()
    plain = copy.copy(lm)
    plain.model = model
    assert result.ablated_value == pytest.approx(_plain_score(plain, s.enc.input_ids, target), abs=1e-5)


config = tm._bert_config(10)  # the tiny BERT's width, for the zero MLP above


def test_every_head_of_a_layer_and_batched_ablations_equal_one_at_a_time(loaded):
    lm, s, target = case(loaded, "gpt2")
    knockouts = [AB.Knockout(AB.HEAD, 0, 0), AB.Knockout(AB.HEAD, 1, 1), AB.Knockout(AB.LAYER_HEADS, 1),
                 AB.Knockout(AB.MLP, 1)]
    batched = AB.ablated_values(lm, s, target, knockouts)
    alone = [AB.ablate(lm, s, target, k).ablated_value for k in knockouts]
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    both = AB.ablated_values(lm, s, target, [AB.Knockout(AB.HEAD, 1, 0)])
    layer = AB.ablated_values(lm, s, target, [AB.Knockout(AB.LAYER_HEADS, 1)])
    assert not np.allclose(both, layer)  # one head is not the whole layer
    with pytest.raises(InputError):
        AB.ablate(lm, s, target, AB.Knockout(AB.HEAD, 7, 0))


def test_head_importance_is_the_change_of_each_single_head(loaded):
    lm, s, target = case(loaded, "bert-mlm")
    heat = AB.head_importance(lm, s, target)
    layers, heads = lm.model.config.num_hidden_layers, lm.model.config.num_attention_heads
    assert heat.change.shape == (layers, heads)
    for layer in range(layers):
        for head in range(heads):
            one = AB.ablate(lm, s, target, AB.Knockout(AB.HEAD, layer, head))
            assert heat.change[layer, head] == pytest.approx(one.change, abs=1e-5)


def test_layers_before_the_first_knockout_are_replayed_not_recomputed(loaded):
    lm, s, target = case(loaded, "gpt2")
    calls = []
    hook = lm.model.transformer.h[0].attn.register_forward_hook(lambda *a: calls.append(1))
    try:
        values = AB.ablated_values(lm, s, target, [AB.Knockout(AB.HEAD, 1, 0), AB.Knockout(AB.MLP, 1)])
    finally:
        hook.remove()
    assert len(calls) == 1  # the clean forward that recorded the layers; not the ablated batch
    alone = [AB.ablate(lm, s, target, k).ablated_value for k in (AB.Knockout(AB.HEAD, 1, 0), AB.Knockout(AB.MLP, 1))]
    np.testing.assert_allclose(values, alone, atol=1e-5)


def test_an_ablation_leaves_another_sessions_forward_alone(loaded):
    """Models are shared by every browser session: knockouts act on the asking thread only."""
    import threading

    lm, s, target = case(loaded, "gpt2")
    inputs = lm.batch_inputs([s.enc])
    clean = lm.heads(inputs)["logits"]
    with lm.recording_layers() as replay:
        lm.heads(inputs)
    seen = {}
    keep_heads, keep_mlps = AB.masks(lm, [AB.Knockout(AB.LAYER_HEADS, 1), AB.Knockout(AB.MLP, 1)])
    with torch.inference_mode(), lm.ablating(keep_heads, keep_mlps, replay):
        other = threading.Thread(target=lambda: seen.update(out=lm.heads(inputs)["logits"]))
        other.start()
        other.join()
    torch.testing.assert_close(seen["out"], clean)


# --- the cross-check -------------------------------------------------------------------------------


def test_rank_agreement_is_spearman_of_magnitudes_with_ties_and_constants():
    table = rank_agreement({"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([-1.0, -2.0, -3.0, -4.0]),
                            "c": np.array([4.0, 3.0, 2.0, 1.0]), "flat": np.array([1.0, 1.0, 1.0, 1.0]),
                            "gap": np.array([np.nan, 2.0, 3.0, 4.0])})
    assert table.loc["a", "b"] == pytest.approx(1.0)  # magnitudes: the sign does not matter
    assert table.loc["a", "c"] == pytest.approx(-1.0)
    assert np.isnan(table.loc["a", "flat"]) and np.isnan(table.loc["flat", "flat"])
    assert table.loc["a", "gap"] == pytest.approx(1.0)  # the NaN word is left out of that pair


def test_cross_check_puts_six_methods_side_by_side(loaded):
    lm, s, target = case(loaded, "gpt2")
    check = cross_check(lm, s, target, steps=16)
    assert list(check.importances.columns) == list(check.agreement.columns) and len(check.agreement) == 6
    assert list(check.importances.index) == list(check.words)
    np.testing.assert_allclose(check.importances["integrated gradients"],
                               A.integrated_gradients(lm, s, target, steps=16).word_scores, atol=1e-6)
    attention = s.record.attention(s.record.n_layers - 1).mean(0)[target.reads_from]
    np.testing.assert_allclose(check.importances["last-layer attention"],
                               sum_to_words(attention, s.record.word_ids, check.attributions[A.IG].word_index), atol=1e-6)
    weights = -check.heads.change
    by_hand = sum(weights[layer, head] * s.record.attention(layer)[head, target.reads_from]
                  for layer in range(weights.shape[0]) for head in range(weights.shape[1]))
    np.testing.assert_allclose(check.importances["head ablation × attention"],
                               sum_to_words(by_hand, s.record.word_ids, check.attributions[A.IG].word_index), atol=1e-6)


# --- sense attribution -----------------------------------------------------------------------------

SENSES = [("money", "the bank gave me a loan"), ("money", "my bank account is empty"),
          ("money", "she paid the bank"), ("river", "the river bank was wet"),
          ("river", "we sat on the bank of the river"), ("river", "fish swim near the muddy bank")]


@pytest.mark.parametrize("key", ["bert-bare", "elmo-tiny-test"])
def test_sense_attribution_is_complete_and_ranks_the_context(loaded, tiny_models, key):
    lm = registry.get_model(tiny_models[key] if key in tiny_models else key, "cpu")
    sentences = [LabeledSentence(text, sense) for sense, text in SENSES]
    records = lm.analyze([s.text for s in sentences])
    occ = collect_target_vectors(records, sentences, "bank")
    layer = 1
    result = sense_attribution(lm, occ, SENSES[4][1], 4, layer, steps=64)
    assert (result.sense, result.other_sense) == ("river", "money")
    assert abs(result.completeness_gap) <= 0.02 * abs(result.value - result.baseline_value) + 1e-6
    assert result.words[result.target_word] == "bank"
    assert [w for w, _ in result.context_ranking()].count("bank") == 0
    own = occ.vectors[layer][[3, 5]].mean(0)
    other = occ.vectors[layer][:3].mean(0)
    v = occ.vectors[layer][4]
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert result.value == pytest.approx(cos(v, own) - cos(v, other), abs=1e-4)


def test_sense_attribution_needs_two_tagged_senses(loaded, tiny_models):
    lm = registry.get_model("elmo-tiny-test", "cpu")
    sentences = [LabeledSentence(text, "river") for _, text in SENSES[3:]]
    occ = collect_target_vectors(lm.analyze([s.text for s in sentences]), sentences, "bank")
    with pytest.raises(InputError, match="two senses"):
        sense_attribution(lm, occ, sentences[0].text, 0, 1)


# --- on a GPU ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "llama", "qa-span"])
def test_attribution_and_ablation_on_cuda_equal_the_cpu(loaded, tiny_models, kind):
    lm, s, target = case(loaded, kind)
    folder = lm.spec.source.removeprefix("hf:")
    gpu = load_hf(spec_for(folder), device="cuda")
    gs = A.subject(gpu, s.record.text, s.record.text_pair)
    for method in (lambda m, x: A.integrated_gradients(m, x, target, steps=16), lambda m, x: A.occlusion(m, x, target)):
        np.testing.assert_allclose(method(gpu, gs).word_scores, method(lm, s).word_scores, atol=2e-4, rtol=1e-3)
    np.testing.assert_allclose(AB.head_importance(gpu, gs, target).change, AB.head_importance(lm, s, target).change,
                               atol=2e-4)
