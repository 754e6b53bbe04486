"""The layer story: Ethayarajh's measures on a corpus table, the logit lens's rank of the right
token (checked against our own forward of the tiny models), and the per-layer story itself on
the tiny BERT, the tiny GPT-2 and the tiny ELMo."""

import re
from itertools import combinations

import numpy as np
import pytest
import torch
import transformers as tf

from ctxlens.analysis.contextuality import contextuality_report, corpus_contextuality, load_corpus
from ctxlens.analysis.corpus import from_records
from ctxlens.analysis.polysemy import collect_target_vectors, load_presets, separation_by_layer
from ctxlens.errors import CapabilityMissing
from ctxlens.methods.extraction import analyze_all
from ctxlens.methods.layer_story import (
    LENS_SENTENCES,
    MASK_RATE,
    MEASURES,
    layer_story,
    right_token_ranks,
    sense_separation,
    story_text,
)

LENS_TEXTS = [
    "The river bank was wet after the rain.",
    "She went to the bank to deposit money.",
    "A cat sat on the mat with a dog.",
]
BASE = ["pos_selectivity", "sense_separation", "self_similarity", "anisotropy"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """ELMo's learned mix runs 300 Adam steps on small tensors: on a busy 2-core machine
    torch's second thread makes each step wait (~50x slower). One thread here only."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- contextuality on a corpus table


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def bert_records(tiny_models):
    return analyze_all(tiny_models["bert-mlm"], load_corpus()[:40], device="cpu")


def test_corpus_contextuality_equals_the_report_and_a_brute_force(bert_records):
    table = from_records(bert_records, [r.text for r in bert_records])
    frame = corpus_contextuality(table)
    report = contextuality_report(bert_records)
    numeric = ["layer", "relative_depth", "self_similarity", "intra_sentence", "baseline", "n_types"]
    np.testing.assert_allclose(frame[numeric].to_numpy(float), report[numeric].to_numpy(float), rtol=1e-12)
    assert (frame.model == report.model).all()

    # Brute force: words with a letter; one occurrence per type and sentence; types seen >= 5 times.
    keep = [i for i, w in enumerate(table.words) if any(c.isalpha() for c in w)]
    by_type, seen = {}, set()
    for i in keep:
        key = (table.sentence_id[i], table.words[i].lower())
        if key not in seen:
            seen.add(key)
            by_type.setdefault(key[1], []).append(i)
    frequent = {t: rows for t, rows in by_type.items() if len(rows) >= 5}
    assert frame.n_types.iloc[0] == len(frequent) > 3
    x = _unit(table.vectors.astype(np.float64))
    for layer in range(x.shape[0]):
        per_type = [np.mean([x[layer, a] @ x[layer, b] for a, b in combinations(rows, 2)])
                    for rows in frequent.values()]
        assert frame.self_similarity[layer] == pytest.approx(np.mean(per_type), abs=1e-6)
        per_sentence = []
        for s in np.unique(table.sentence_id):
            rows = [i for i in keep if table.sentence_id[i] == s]
            if len(rows) > 1:
                mean = _unit(table.vectors[layer, rows].astype(np.float64).mean(axis=0))
                per_sentence.append(np.mean([x[layer, i] @ mean for i in rows]))
        assert frame.intra_sentence[layer] == pytest.approx(np.mean(per_sentence), abs=1e-6)
        # The baseline samples pairs (first word uniform, second uniform among other sentences'
        # words); its expectation, exactly. 20000 pairs: standard error < 0.005.
        sid = table.sentence_id[keep]
        cos = x[layer, keep] @ x[layer, keep].T
        expected = np.mean([cos[i, sid != sid[i]].mean() for i in range(len(keep))])
        sampled = corpus_contextuality(table, n_pairs=20000).baseline[layer]
        assert sampled == pytest.approx(expected, abs=0.02)


# ---------------------------------------------------------------- the logit lens's ranks


def ranks_of(logits, targets):
    """1-based rank of each target among its row's logits, by a stable descending argsort; a
    tie with the target would make the rank ambiguous, so there must be none."""
    order = np.argsort(-logits, axis=1, kind="stable")
    ranks = np.array([np.flatnonzero(order[i] == t)[0] + 1 for i, t in enumerate(targets)])
    for i, t in enumerate(targets):
        assert np.sum(logits[i] == logits[i, t]) == 1, "an exact tie with the right token"
    return ranks


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_right_token_ranks_of_tiny_causal_lms_by_hand(tiny_models, kind):
    folder = tiny_models[kind]
    frame = right_token_ranks(folder, LENS_TEXTS, device="cpu")
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.AutoModelForCausalLM.from_pretrained(folder).eval()
    final_norm = model.transformer.ln_f if kind == "gpt2" else model.model.norm
    n_layers = model.config.num_hidden_layers
    per_layer = [[] for _ in range(n_layers + 1)]
    for text in LENS_TEXTS:
        ids = tokenizer(text, return_tensors="pt").input_ids
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states
            for layer, h in enumerate(hidden):
                # HF's last hidden state already went through the final norm; the earlier ones get it here.
                h = h if layer == n_layers else final_norm(h)
                logits = model.lm_head(h)[0, :-1].double().numpy()
                per_layer[layer].append(ranks_of(logits, ids[0, 1:].numpy()))
            # The top layer's lens is the model's own prediction.
            np.testing.assert_allclose(model.lm_head(hidden[-1]), model(ids).logits, rtol=1e-5, atol=1e-5)
    ranks = [np.concatenate(r) for r in per_layer]
    assert frame.layer.tolist() == list(range(n_layers + 1))
    assert (frame.n_predictions == len(ranks[0])).all()
    assert len(ranks[0]) == sum(len(tokenizer(t).input_ids) - 1 for t in LENS_TEXTS)
    np.testing.assert_allclose(frame.mrr, [np.mean(1 / r) for r in ranks], rtol=1e-6)
    np.testing.assert_allclose(frame.top1, [np.mean(r == 1) for r in ranks], atol=1e-12)


def test_right_token_ranks_of_the_tiny_mlm_are_its_own_predictions(tiny_models):
    folder = tiny_models["bert-mlm"]
    seed = 3
    frame = right_token_ranks(folder, LENS_TEXTS, device="cpu", seed=seed)
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.BertForMaskedLM.from_pretrained(folder).eval()
    rng = np.random.default_rng(seed)  # the positions: 15 % of the non-special tokens, as documented
    per_layer = [[] for _ in range(model.config.num_hidden_layers + 1)]
    for text in LENS_TEXTS:
        enc = tokenizer(text, return_special_tokens_mask=True, return_tensors="pt")
        candidates = np.flatnonzero(enc.special_tokens_mask[0].numpy() == 0)
        positions = candidates[rng.random(len(candidates)) < MASK_RATE]
        positions = positions if len(positions) else candidates[:1]
        ids = enc.input_ids.clone()
        targets = ids[0, positions].numpy().copy()
        ids[0, positions] = tokenizer.mask_token_id
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=enc.attention_mask, output_hidden_states=True)
            # The last layer: the model's own MLM logits at the masked positions.
            own = out.logits[0, positions].double().numpy()
            for layer, h in enumerate(out.hidden_states):
                lens = model.cls(h)[0, positions].double().numpy()
                if layer == model.config.num_hidden_layers:
                    np.testing.assert_allclose(lens, own, rtol=1e-5, atol=1e-5)
                per_layer[layer].append(ranks_of(lens, targets))
    ranks = [np.concatenate(r) for r in per_layer]
    assert (frame.n_predictions == len(ranks[-1])).all() and len(ranks[-1]) >= len(LENS_TEXTS)
    np.testing.assert_allclose(frame.mrr, [np.mean(1 / r) for r in ranks], rtol=1e-6)
    np.testing.assert_allclose(frame.top1, [np.mean(r == 1) for r in ranks], atol=1e-12)
    assert ((frame.top1 <= frame.mrr + 1e-12) & (frame.mrr > 0) & (frame.mrr <= 1)).all()


def test_right_token_ranks_reads_only_the_first_sentences(tiny_models):
    texts = load_corpus()[:LENS_SENTENCES + 3]
    many = right_token_ranks(tiny_models["gpt2"], texts, device="cpu")
    first = right_token_ranks(tiny_models["gpt2"], texts[:LENS_SENTENCES], device="cpu")
    np.testing.assert_allclose(many[["mrr", "top1", "n_predictions"]], first[["mrr", "top1", "n_predictions"]])


@pytest.mark.parametrize("model", ["all-MiniLM-L6-v2", "bert-bare"])
def test_no_head_no_logit_lens(model, tiny_models):
    name = tiny_models.get(model, model)
    with pytest.raises(CapabilityMissing, match="logit lens"):
        right_token_ranks(name, LENS_TEXTS, device="cpu")


# ---------------------------------------------------------------- sense separation


def test_sense_separation_equals_the_polysemy_page(tiny_models):
    folder = tiny_models["bert-mlm"]
    got = sense_separation(folder, device="cpu")
    per_preset = []
    for preset in load_presets().values():
        sentences = preset.sentences()
        records = analyze_all(folder, [s.text for s in sentences], device="cpu")
        occ = collect_target_vectors(records, sentences, preset.target)
        per_preset.append(separation_by_layer(occ).accuracy.to_numpy())
    # Different batches (float round-off) could flip a near-tie: one point of ~20 in one preset
    # moves the mean over 7 presets by < 0.01.
    np.testing.assert_allclose(got, np.nanmean(per_preset, axis=0), atol=0.02)
    assert got.shape == (3,) and ((got >= 0) & (got <= 1)).all()


# ---------------------------------------------------------------- the story


@pytest.fixture(scope="module")
def stories(tiny_models):
    return {kind: layer_story(tiny_models.get(kind, kind), device="cpu")
            for kind in ("bert-mlm", "gpt2", "elmo-tiny-test")}


EXPECTED = {
    "bert-mlm": BASE + ["right_token_mrr"],
    "gpt2": BASE + ["right_token_mrr"],
    "elmo-tiny-test": BASE + ["mix_weight"],
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_layer_story_rows_values_and_notes(stories, kind):
    story = stories[kind]
    assert list(story.columns) == ["model", "layer", "relative_depth", "measure", "value", "label"]
    assert sorted(set(story.measure)) == sorted(EXPECTED[kind])
    assert story.label.tolist() == [MEASURES[m] for m in story.measure]
    for measure, frame in story.groupby("measure"):
        assert frame.layer.tolist() == [0, 1, 2], measure  # one row per layer per measure
        np.testing.assert_allclose(frame.relative_depth, [0.0, 0.5, 1.0])
    values = story.value.to_numpy(float)
    notes = story.attrs["notes"]
    assert ((values >= 0) & (values <= 1) | np.isnan(values)).all()
    if np.isnan(values).any():
        assert notes, "a NaN value with no note saying why"
    if "right_token_mrr" in EXPECTED[kind]:
        assert notes == []
    else:
        assert len(notes) == 1 and "logit lens" in notes[0]
    if kind == "elmo-tiny-test":
        weights = story[story.measure == "mix_weight"].value
        assert weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_layer_story_values_are_the_measures_it_names(stories, tiny_models):
    from ctxlens.methods.corpus import corpus_words
    from ctxlens.methods.probes import probe_curves

    name = tiny_models["gpt2"]
    story = stories["gpt2"].set_index(["measure", "layer"]).value
    probes = probe_curves(name, "pos", device="cpu")
    context = corpus_contextuality(corpus_words(name, device="cpu"))
    lens = right_token_ranks(name, device="cpu")
    np.testing.assert_allclose(story["pos_selectivity"], probes.selectivity, atol=1e-12)
    np.testing.assert_allclose(story["self_similarity"], context.self_similarity, atol=1e-12)
    np.testing.assert_allclose(story["anisotropy"], context.baseline, atol=1e-12)
    np.testing.assert_allclose(story["right_token_mrr"], lens.mrr, atol=1e-12)


def test_story_text_names_each_model_and_real_layers(stories):
    import pandas as pd

    text = story_text(pd.concat(list(stories.values())))
    paragraphs = text.split("\n\n")
    assert len(paragraphs) == len(stories)
    for paragraph, story in zip(paragraphs, stories.values()):
        model = story.model.iloc[0]
        assert paragraph.startswith(f"**{model}**")
        layers = set(story.layer.tolist())
        named = [int(n) for n in re.findall(r"layer (\d+)", paragraph)]
        assert named and set(named) <= layers
        curve = {m: f.set_index("layer").value for m, f in story.groupby("measure")}
        # The layers it names are where the curves peak (ties: any of the tied layers).
        best = int(re.search(r"readable at layer (\d+)", paragraph).group(1))
        assert curve["pos_selectivity"][best] == pytest.approx(curve["pos_selectivity"].max())
        best = int(re.search(r"separate best at layer (\d+)", paragraph).group(1))
        assert curve["sense_separation"][best] == pytest.approx(curve["sense_separation"].max())
        if "mix_weight" in curve:
            layer = int(re.search(r"scalar mix[^;]*?layer (\d+)", paragraph).group(1))
            assert curve["mix_weight"][layer] == pytest.approx(curve["mix_weight"].max())
            assert f"{curve['mix_weight'].max():.0%}" in paragraph
        if "right_token_mrr" in curve:
            assert "logit lens" in paragraph
        else:
            assert "logit lens" not in paragraph
    assert story_text(pd.concat(list(stories.values()))[lambda f: f.measure == "anisotropy"]) == ""
