"""Word translation retrieval (cross-lingual alignment): the metric on constructed embeddings and
hand examples, the bundled sentence pairs, the per-layer table on the tiny random BERT against a
brute-force recomputation from the word vectors, the figure, and the tab offline (AppTest)."""

import itertools

import numpy as np
import pandas as pd
import pytest
from apptest import charts, ok, open_tab

from ctxlens.analysis import crosslingual as xl
from ctxlens.analysis.polysemy import find_target
from ctxlens.analysis.words import split_words
from ctxlens.errors import InputError
from ctxlens.figures.crosslingual import retrieval_figure
from ctxlens.methods import registry
from ctxlens.methods.crosslingual import (
    SentencePair,
    aligned_words,
    crosslingual_table,
    languages,
    load_pairs,
    retrieval_table,
    summary,
    word_retrieval,
)
from ctxlens.models.loading import spec_for
from ctxlens.models.registry import analyze_texts

TIE = xl.TIE
NEAR = 1e-5  # cosines this near the tie line may fall either side of it on another CPU


def unit(angle_degrees):
    a = np.deg2rad(angle_degrees)
    return np.array([np.cos(a), np.sin(a)])


# ---------------------------------------------------------------- the metric


def test_translations_that_are_nearest_give_mrr_and_precision_one():
    rng = np.random.default_rng(0)
    words = rng.normal(size=(12, 16))
    order = rng.permutation(12)  # candidates in another order than the queries
    translations = words[order] + 0.01 * rng.normal(size=(12, 16))
    relevant = np.zeros((12, 12), bool)
    relevant[order, np.arange(12)] = True  # query order[j]'s translation is candidate j
    ranks = xl.retrieval_ranks(xl.cosine_matrix(words, translations), relevant)
    assert ranks.tolist() == [1] * 12
    assert xl.precision_at_1(ranks) == 1.0
    assert xl.mean_reciprocal_rank(ranks) == pytest.approx(1.0)


def test_known_ranks_give_the_hand_mrr():
    candidates = np.stack([unit(a) for a in (0, 30, 60, 90)])
    # Query at 0°: c0 first (rank 1). At 35°: c1 (5°), c2 (25°), c0 (35°): c0 third.
    # At 80°: c3 (10°), c2 (20°): c2 second.
    queries = np.stack([unit(0), unit(35), unit(80)])
    relevant = np.zeros((3, 4), bool)
    relevant[[0, 1, 2], [0, 0, 2]] = True
    similarity = xl.cosine_matrix(queries, candidates)
    np.testing.assert_allclose(similarity[1], np.cos(np.deg2rad([35, 5, 25, 55])), atol=1e-12)
    ranks = xl.retrieval_ranks(similarity, relevant)
    assert ranks.tolist() == [1, 3, 2]
    assert xl.precision_at_1(ranks) == pytest.approx(1 / 3)
    assert xl.mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert xl.retrieved(similarity, relevant, ranks).tolist() == [0, 1, 3]


def test_ties_count_against_the_query():
    # All candidates alike: no direction singles out the translation, so it ranks last, not first.
    same = np.tile(unit(20), (5, 1))
    relevant = np.eye(5, dtype=bool)
    assert xl.retrieval_ranks(xl.cosine_matrix(same, same), relevant).tolist() == [5] * 5
    gold = 0.9
    cases = {  # the other candidate's cosine → the translation's rank
        gold: 2,  # an exact tie goes ahead
        gold - TIE / 10: 2,  # so does a tie within TIE (round-off of another BLAS)
        gold - 1e-3: 1,  # clearly below: not a tie
        gold + 1e-3: 2,
    }
    for other, rank in cases.items():
        similarity = np.array([[gold, other, 0.1]])
        assert xl.retrieval_ranks(similarity, np.array([[True, False, False]])).tolist() == [rank], other
    # Two right answers tied with each other do not push each other down.
    both = np.array([[0.5, 0.5, 0.2]])
    assert xl.retrieval_ranks(both, np.array([[True, True, False]])).tolist() == [1]


def test_retrieval_refuses_what_has_no_answer():
    with pytest.raises(InputError, match="zero"):
        xl.cosine_matrix(np.zeros((1, 2)), np.ones((2, 2)))
    with pytest.raises(InputError, match="zero or not finite"):
        xl.cosine_matrix(np.ones((1, 2)), np.array([[1.0, np.nan]]))
    with pytest.raises(InputError, match="relevant"):
        xl.retrieval_ranks(np.ones((2, 2)), np.array([[True, False], [False, False]]))
    with pytest.raises(InputError, match="boolean"):
        xl.retrieval_ranks(np.ones((2, 2)), np.eye(2))


def test_chance_levels_equal_the_enumeration_of_every_order():
    relevant = np.array([[True, False, False, False, False], [True, True, False, False, False]])
    p1, rr = [], []
    for row in relevant:
        firsts = [1 + next(i for i, j in enumerate(order) if row[j]) for order in itertools.permutations(range(5))]
        p1.append(np.mean([f == 1 for f in firsts]))
        rr.append(np.mean([1 / f for f in firsts]))
    assert xl.chance(relevant) == pytest.approx((np.mean(p1), np.mean(rr)))
    assert xl.chance(np.eye(5, dtype=bool))[1] == pytest.approx(sum(1 / k for k in range(1, 6)) / 5)


def test_centring_subtracts_the_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 7, 4)) + 5.0
    np.testing.assert_allclose(xl.centre(x).mean(axis=1), 0.0, atol=1e-12)
    mean = rng.normal(size=(3, 4))
    np.testing.assert_allclose(xl.centre(x, mean), x - mean[:, None, :])


def test_same_pair_is_the_word_pair_not_the_spelling():
    relevant = xl.same_pair(["dog", "morning", "Dog", "tomorrow"], ["Hund", "Morgen", "Hund", "morgen"])
    assert relevant.tolist() == [[True, False, True, False], [False, True, False, False],
                                 [True, False, True, False], [False, False, False, True]]


# ---------------------------------------------------------------- the bundled pairs


@pytest.mark.parametrize("language", ["de", "fr"])
def test_the_pairs_load_and_every_aligned_word_is_a_whole_word_of_its_sentence(language):
    pairs = load_pairs(language)
    assert 40 <= len(pairs) <= 60
    for p in pairs:
        assert 1 <= len(p.align) <= 3, p
        for en_word, other_word in p.align:
            for word, text in ((en_word, p.en), (other_word, p.other)):
                hits = find_target(split_words(text), word)
                assert len(hits) == 1, (word, text)
                assert split_words(text)[hits[0]].text == word  # as written, not only case-folded
            assert en_word.casefold() != other_word.casefold(), (en_word, other_word)
    assert languages()[language] in ("German", "French")
    with pytest.raises(InputError, match="German"):
        load_pairs("xx")


# ---------------------------------------------------------------- the method on the tiny BERT


@pytest.fixture(scope="module")
def bert(tiny_models):
    return tiny_models["bert-mlm"]


@pytest.fixture(scope="module")
def aligned(bert):
    return aligned_words(bert, "de", device="cpu")


@pytest.fixture(scope="module")
def table(aligned):
    return retrieval_table(aligned)


def word_vectors_by_hand(model, texts):
    """Mean-pooled vectors [L, D] of every word of every text, from the tokens the tokenizer gave
    it; None for a word without tokens (the tiny vocabulary reads "süß" as [UNK], a special token)."""
    out = []
    for record in analyze_texts(model, list(texts), device="cpu", hidden_only=True):
        states = np.asarray(record.hidden_states, np.float64)
        tokens = [np.flatnonzero(record.word_ids == w) for w in range(len(record.words))]
        out.append([states[:, t].mean(axis=1) if len(t) else None for t in tokens])
    return out


def brute_force(model, pairs):
    """Ranks per (layer, direction, centred), written out with loops from the word vectors: the
    least and the most a query's rank may be when round-off moves cosines by up to NEAR (equal
    unless a candidate lies that near the tie line)."""
    en, de = word_vectors_by_hand(model, [p.en for p in pairs]), word_vectors_by_hand(model, [p.other for p in pairs])
    means = {name: np.mean([v for sentence in vecs for v in sentence if v is not None], axis=0)
             for name, vecs in (("en", en), ("de", de))}
    keys, q_en, q_de, skipped = [], [], [], []
    for i, p in enumerate(pairs):
        for a, b in p.align:
            va = en[i][[w.text for w in split_words(p.en)].index(a)]
            vb = de[i][[w.text for w in split_words(p.other)].index(b)]
            if va is None or vb is None:
                skipped.append(f"{a} → {b}")
                continue
            keys.append((a.lower(), b.lower()))
            q_en.append(va)
            q_de.append(vb)
    out = {}
    n_layers = q_en[0].shape[0]
    for layer in range(n_layers):
        for direction, (queries, candidates, qm, cm) in {"en→de": (q_en, q_de, "en", "de"),
                                                          "de→en": (q_de, q_en, "de", "en")}.items():
            for centred in (False, True):
                low, high = [], []
                cands = np.array([c[layer] - (means[cm][layer] if centred else 0) for c in candidates])
                for i, q in enumerate(queries):
                    qv = q[layer] - (means[qm][layer] if centred else 0)
                    cos = cands @ qv / np.linalg.norm(cands, axis=1) / np.linalg.norm(qv)
                    best = max(cos[j] for j in range(len(keys)) if keys[j] == keys[i])
                    others = [cos[j] for j in range(len(keys)) if keys[j] != keys[i]]
                    # Within NEAR of the tie line, float32 round-off (pooling order, BLAS) may decide:
                    # the rank with the line moved NEAR down counts every candidate that may go ahead.
                    low.append(1 + sum(c >= best - TIE + NEAR for c in others))
                    high.append(1 + sum(c >= best - TIE - NEAR for c in others))
                out[layer, direction, centred] = np.array(low), np.array(high)
    return out, skipped


def test_the_table_has_a_row_per_layer_direction_and_centring(table, aligned):
    n = len(aligned.english)
    assert n + len(aligned.skipped) == sum(len(p.align) for p in load_pairs("de"))
    assert aligned.en_vectors.shape == aligned.other_vectors.shape == (3, n, 32)
    assert aligned.en_mean.shape == (3, 32)
    assert len(table) == 3 * 2 * 2
    assert set(table.direction) == {"en→de", "de→en"} and set(table.layer) == {0, 1, 2}
    assert (table.queries == n).all() and (table.candidates == n).all()
    assert table.precision_at_1.between(0, 1).all() and table.mrr.between(1 / n, 1).all()
    assert (table.mrr >= table.precision_at_1 - 1e-12).all()
    frame = summary(table)
    assert frame.shape == (3, 9) and frame.columns[1] == "en→de P@1" and frame.columns[-1] == "de→en MRR centred"
    assert frame["de→en MRR centred"].tolist() == pytest.approx(
        table[(table.direction == "de→en") & table.centred].sort_values("layer").mrr.tolist())


def test_the_table_equals_a_brute_force_recomputation(bert, table, aligned):
    expected, skipped = brute_force(bert, load_pairs("de"))
    assert aligned.skipped == skipped  # words without tokens of their own (the tiny vocabulary's [UNK])
    n = len(aligned.english)
    for (layer, direction, centred), (low, high) in expected.items():
        assert np.mean(low != high) < 0.05  # nearly every query is decided well away from the tie line
        words = word_retrieval(aligned, layer, direction, centred)
        got = words["rank"].to_numpy()
        assert words["rank"].between(1, n).all()
        assert np.all((low <= got) & (got <= high))  # equal to the brute force wherever round-off cannot decide
        row = table[(table.layer == layer) & (table.direction == direction) & (table.centred == centred)].iloc[0]
        assert row.precision_at_1 == pytest.approx(np.mean(got == 1), abs=1e-12)
        assert row.mrr == pytest.approx(np.mean(1 / got), abs=1e-12)
        assert np.mean(high == 1) - 1e-12 <= row.precision_at_1 <= np.mean(low == 1) + 1e-12
        assert np.mean(1 / high) - 1e-12 <= row.mrr <= np.mean(1 / low) + 1e-12
        right = words[words.correct]
        assert (right.retrieved == right.translation).all()
        assert (words.cosine_retrieved >= words.cosine_translation - TIE).all()


def test_the_method_is_registered_and_refuses_unusable_input(bert, aligned):
    assert registry.method("crosslingual").applies(spec_for(bert))
    pd.testing.assert_frame_equal(crosslingual_table(bert, "de", device="cpu"), retrieval_table(aligned), rtol=1e-9)
    with pytest.raises(InputError, match="exactly once"):
        aligned_words(bert, "de", pairs=[SentencePair("The cat sat.", "Die Katze sass.", (("dog", "Katze"),))],
                      device="cpu")
    with pytest.raises(InputError, match="direction"):
        word_retrieval(aligned, 1, "de→fr")
    with pytest.raises(InputError, match="layer 7"):
        word_retrieval(aligned, 7, "en→de")


def test_the_figures_plot_the_table(table):
    named = table.assign(model="<b>tiny</b>")
    for measure in ("precision_at_1", "mrr"):
        fig = retrieval_figure(named, measure)
        assert len(fig.data) == 5  # two directions × raw / centred, and chance
        first = fig.data[0]
        rows = named[(named.direction == "en→de") & ~named.centred].sort_values("layer")
        assert first.name == "en→de, raw" and list(first.y) == pytest.approx(rows[measure].tolist())
        assert fig.data[-1].y[0] == pytest.approx(named[f"chance_{measure}"].iloc[0])
        assert "<b>" not in fig.layout.title.text and "&lt;b&gt;" in fig.layout.title.text
    assert retrieval_figure(named, "mrr", x="relative_depth").data[0].x[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        retrieval_figure(named, "accuracy")


# ---------------------------------------------------------------- the tab (AppTest)


def test_the_tab_offline_names_the_model_it_needs():
    at = open_tab("notes_multilingual", 180).run()
    ok(at)
    said = " ".join(w.value for w in at.warning)
    assert "bert-base-multilingual-cased" in said and "download" in said
    assert not charts(at)


def test_the_tab_online_offers_the_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # only the status is read: nothing is downloaded unless clicked
    at = open_tab("notes_multilingual", 180).run()
    ok(at)
    assert any("bert-base-multilingual-cased" in i.value and "714 MB" in i.value for i in at.info)
    assert "Download bert-base-multilingual-cased" in at.button(key="ml_download").label
    assert not charts(at)


def test_the_tab_runs_on_a_tiny_model(bert, aligned):
    at = open_tab("notes_multilingual", 180)
    at.session_state["ctx_extra_models"] = [bert]
    at.session_state["ml_model"] = bert
    at.run()
    ok(at)
    assert len(charts(at)) == 2
    assert len(at.dataframe) == 2
    assert not at.warning, [w.value for w in at.warning]
    assert any("52 sentence pairs" in c.value for c in at.caption)
    left_out = [c.value for c in at.caption if c.value.startswith("Left out")]
    assert len(left_out) == bool(aligned.skipped) and all(w in left_out[0] for w in aligned.skipped[:1])
    at.radio(key="ml_direction").set_value("de→en").run()
    at.selectbox(key="ml_language").set_value("fr").run()  # its directions are en→fr and fr→en
    ok(at)
    assert at.radio(key="ml_direction").value == "en→fr"
    assert "fr→en MRR centred" in at.dataframe[0].value.columns


def test_the_tab_offline_runs_the_english_only_baseline():
    at = open_tab("notes_multilingual", 180).run()
    at.button(key="ml_use_baseline").click().run()
    ok(at)
    assert at.selectbox(key="ml_model").value == "all-MiniLM-L6-v2"
    assert len(charts(at)) == 2
    assert any("English only" in i.value for i in at.info)
    assert not at.warning, [w.value for w in at.warning]
