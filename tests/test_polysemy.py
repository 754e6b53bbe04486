import html
import re
import threading

import numpy as np
import pandas as pd
import pytest

from ctxlens.analysis.polysemy import (
    SAME_POINT,
    UNLABELLED,
    LabeledSentence,
    all_identical,
    collect_target_vectors,
    cosine_distances,
    cosine_matrix,
    find_target,
    hover_html,
    load_presets,
    loo_nearest_centroid_accuracy,
    nearest_centroid_accuracy,
    parse_csv,
    parse_sentences,
    parse_upload,
    project,
    separation_by_layer,
    silhouette,
    warm_up_umap,
)
from ctxlens.analysis.words import split_words
from ctxlens.errors import InputError
from ctxlens.figures.embeddings import (
    coordinates_frame,
    cosine_heatmap,
    sense_scatter,
    separation_lines,
)
from ctxlens.record import Activations, Analysis, Family


def make_record(text, word_vectors, model_key="toy", split=None):
    """A record with a [CLS] token and one token per word (or two for word `split`).

    word_vectors: [L+1, W, D]; a split word gets vectors v and 3v, so mean pooling gives 2v.
    """
    words = split_words(text)
    n_layers, _, dim = word_vectors.shape
    offsets, word_ids, columns = [(0, 0)], [-1], [np.zeros((n_layers, dim), np.float32)]
    for w, word in enumerate(words):
        if w == split:
            mid = word.start + 1
            offsets += [(word.start, mid), (mid, word.end)]
            word_ids += [w, w]
            columns += [word_vectors[:, w], 3 * word_vectors[:, w]]
        else:
            offsets.append((word.start, word.end))
            word_ids.append(w)
            columns.append(word_vectors[:, w])
    t = len(offsets)
    return Analysis(
        model_key=model_key,
        family=Family.MASKED_LM,
        text=text,
        text_pair=None,
        tokens=tuple(["[CLS]"] + [text[a:b] for a, b in offsets[1:]]),
        token_ids=np.arange(t),
        offsets=np.array(offsets, dtype=np.int64),
        word_ids=np.array(word_ids, dtype=np.int64),
        special_mask=np.array([True] + [False] * (t - 1)),
        segment_ids=np.zeros(t, dtype=np.int64),
        words=tuple(words),
        acts=Activations.from_arrays(np.stack(columns, axis=1).astype(np.float32)),
    )


def random_record(text, n_layers=3, dim=4, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_layers, len(split_words(text)), dim)).astype(np.float32)
    return make_record(text, vectors, **kwargs), vectors


# ---------------------------------------------------------------- parsing


def test_parse_sentences_tags_blank_lines_and_bars():
    text = "river | We sat on the bank.\n\n   \nI paid the bank.\n | no tag here\nfinance |\n"
    assert parse_sentences(text) == [
        LabeledSentence("We sat on the bank.", "river"),
        LabeledSentence("I paid the bank."),
        LabeledSentence("| no tag here"),
        LabeledSentence("finance |"),
    ]
    long_left = "x" * 50 + " | bank"
    assert parse_sentences(long_left) == [LabeledSentence(long_left)]


def test_parse_csv_with_and_without_header():
    data = '\ufeffsense,sentence\nriver,"We sat on the bank, happily."\n,I paid the bank.\n,\n'
    data = data.encode()
    assert parse_csv(data) == [
        LabeledSentence("We sat on the bank, happily.", "river"),
        LabeledSentence("I paid the bank."),
    ]
    assert parse_csv("Sentence\nThe bank closed.\n") == [LabeledSentence("The bank closed.")]
    assert parse_csv("The bank closed.,finance\nA grassy bank.\n") == [
        LabeledSentence("The bank closed.", "finance"),
        LabeledSentence("A grassy bank."),
    ]
    expected = [LabeledSentence("A bank.", "x")]
    assert parse_upload("s.CSV", b"sentence,sense\nA bank.,x\n") == expected
    assert parse_upload("s.txt", b"x | A bank.") == [LabeledSentence("A bank.", "x")]
    with pytest.raises(InputError):
        parse_csv(b"\xff\xfe\x00bad")


# ---------------------------------------------------------------- finding the target


def test_find_target_whole_words_only():
    text = "Bank, banking and riverbank; the BANK's bank."
    words = split_words(text)
    hits = find_target(words, "bank")
    assert [words[i].text for i in hits] == ["Bank", "BANK", "bank"]
    assert [words[i].start for i in hits] == [0, 33, 40]
    assert find_target(text, "BANK") == hits  # text is segmented the same way
    assert find_target(words, " bank ", occurrences="first") == hits[:1]
    assert find_target("The banking sector; a riverbank.", "bank") == []


@pytest.mark.parametrize("target", ["river bank", "river-bank", "", "   ", "bank."])
def test_find_target_rejects_multi_word_or_empty(target):
    with pytest.raises(InputError):
        find_target("the bank", target)


# ---------------------------------------------------------------- collecting vectors


def test_collect_target_vectors_all_first_missing_and_pooling():
    sentences = [
        LabeledSentence("The bank by the bank.", "river"),
        LabeledSentence("No target in this one.", "river"),
        LabeledSentence("My Bank, not my banking app.", "finance"),
        LabeledSentence("A bank."),
    ]
    records, vectors = [], []
    for i, s in enumerate(sentences):
        r, v = random_record(s.text, seed=i, split=1 if i == 0 else None)
        records.append(r)
        vectors.append(v)

    occ = collect_target_vectors(records, sentences, "bank", pooling="mean")
    assert occ.missing == [1]
    assert occ.vectors.shape == (3, 4, 4)
    assert occ.sentence_index.tolist() == [0, 0, 2, 3]
    assert occ.word_index.tolist() == [1, 4, 1, 1]
    assert occ.senses == ["river", "river", "finance", UNLABELLED]
    assert occ.labelled.tolist() == [True, True, True, False]
    # Word 1 of sentence 0 is two tokens (v, 3v): mean pooling gives 2v.
    np.testing.assert_allclose(occ.vectors[:, 0], 2 * vectors[0][:, 1], rtol=1e-6)
    np.testing.assert_allclose(occ.vectors[:, 2], vectors[2][:, 1], rtol=1e-6)
    assert occ.texts[2] == "My Bank, not my banking app."
    assert "My <b>Bank</b>, not my banking app." in occ.hover[2]
    np.testing.assert_allclose(occ.relative_depth, [0, 0.5, 1])

    first = collect_target_vectors(records, sentences, "bank", pooling="first", occurrences="first")
    assert first.sentence_index.tolist() == [0, 2, 3]
    np.testing.assert_allclose(first.vectors[:, 0], vectors[0][:, 1], rtol=1e-6)  # first sub-token

    with pytest.raises(InputError):
        collect_target_vectors(records[1:2], sentences[1:2], "bank")


def test_hover_escapes_user_text_and_bolds_the_target():
    text = 'Is <script>alert("x")</script> & a bank?'
    record, _ = random_record(text)
    occ = collect_target_vectors([record], [LabeledSentence(text, "<i>evil</i>")], "bank")
    hover = occ.hover[0]
    assert "<script>" not in hover and "<i>evil</i>" not in hover
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; a <b>bank</b>?" in hover
    assert "&lt;i&gt;evil&lt;/i&gt;" in hover


def test_hover_wraps_long_sentences_without_losing_text():
    text = "word " * 30 + "bank " + "word " * 30
    text = text.strip()
    start = text.index("bank")
    out = hover_html(text, start, start + 4, width=40)
    assert out.count("<br>") >= 3
    assert "<b>bank</b>" in out
    plain = html.unescape(re.sub(r"</?b>", "", out).replace("<br>", " "))
    assert plain == text
    assert all(len(line) <= 45 for line in re.sub(r"</?b>", "", out).split("<br>"))


# ---------------------------------------------------------------- projections


def two_clusters(n_per=8, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_per, dim)) * 0.05 + np.eye(dim)[0]
    b = rng.normal(size=(n_per, dim)) * 0.05 + np.eye(dim)[1]
    return np.vstack([a, b]), np.array(["a"] * n_per + ["b"] * n_per)


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
def test_projection_is_deterministic_for_a_seed(method):
    x, _ = two_clusters()
    first = project(x, method, seed=3)
    assert first.shape == (16, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, project(x, method, seed=3))


def test_projection_small_inputs_and_bad_method():
    x, _ = two_clusters()
    assert project(x[:3], "umap").shape == (3, 2)  # too few for UMAP: PCA
    assert project(x[:1], "tsne").tolist() == [[0.0, 0.0]]
    # PCA separates the clusters along its first axis.
    y = project(x, "pca")[:, 0]
    assert y[:8].max() < y[8:].min() or y[:8].min() > y[8:].max()
    with pytest.raises(ValueError):
        project(x, "lda")


def test_warm_up_umap_from_a_background_thread():
    errors = []

    def run():
        try:
            warm_up_umap()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------- separation metrics


def unit(deg):
    r = np.deg2rad(deg)
    return np.array([np.cos(r), np.sin(r)])


def test_loo_accuracy_two_tight_clusters_is_one():
    x, labels = two_clusters()
    assert loo_nearest_centroid_accuracy(x, labels) == 1.0
    assert silhouette(x, labels) > 0.9


def test_loo_differs_from_non_loo_hand_computed():
    # A at 0° and 50°, B at 75° and 160°. With every point in its centroid all four are
    # right. Leaving 75° out of B puts B's centroid at 160° (85° away) while A's sits at
    # 25° (50° away): 75° is misclassified. The other three stay right.
    x = np.array([unit(0), unit(50), unit(75), unit(160)]) * np.array([[1], [2], [0.5], [3]])
    labels = ["A", "A", "B", "B"]
    assert nearest_centroid_accuracy(x, labels, leave_one_out=False) == 1.0
    assert loo_nearest_centroid_accuracy(x, labels) == 0.75


def test_loo_singleton_sense_cannot_be_recognised():
    x = np.array([unit(0), unit(5), unit(90), unit(95), unit(45)])
    labels = ["a", "a", "b", "b", "c"]
    assert nearest_centroid_accuracy(x, labels, leave_one_out=False) == 1.0
    assert loo_nearest_centroid_accuracy(x, labels) == 0.8
    assert np.isnan(loo_nearest_centroid_accuracy(x, ["a"] * 5))


def test_loo_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5))
    labels = rng.integers(0, 3, 30)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    correct = 0
    for i in range(30):
        keep = np.arange(30) != i
        centroids = np.array([u[keep & (labels == c)].mean(axis=0) for c in range(3)])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        correct += int(np.argmax(centroids @ u[i]) == labels[i])
    assert loo_nearest_centroid_accuracy(x, labels) == pytest.approx(correct / 30)


def test_silhouette_hand_computed_and_degenerate():
    x = np.array([[1, 0], [2, 0], [0, 1], [0, 3]], dtype=float)
    assert silhouette(x, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    # Point (1,1)/√2 between: cosine distance 1 - 1/√2 to each cluster.
    x2 = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1]], dtype=float)
    # Cosine distances: a–a 0, a–(0,1) 1, anything–diagonal d, (0,1)–(0,1) 0.
    # s = (b - a) / max(a, b), a: mean distance within own cluster, b: to the other one.
    # a points: a = 0 → s = 1. (0,1) points: a = (0 + d) / 2, b = 1. Diagonal: a = b = d → 0.
    d = 1 - 1 / np.sqrt(2)
    expected = np.mean([1.0, 1.0, 1 - d / 2, 1 - d / 2, 0.0])
    assert silhouette(x2, ["a", "a", "b", "b", "b"]) == pytest.approx(expected)
    assert np.isnan(silhouette(x, ["a"] * 4))
    assert np.isnan(silhouette(x[:2], ["a", "b"]))


def test_cosine_matrix_grouped_by_sense():
    x = np.array([unit(0), unit(90), unit(10), unit(80)])
    matrix, order = cosine_matrix(x, ["b", "a", "b", "a"])
    assert order.tolist() == [0, 2, 1, 3]
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(np.cos(np.deg2rad(10)))
    assert matrix[0, 2] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(matrix, matrix.T)


def test_separation_by_layer_grows_where_senses_split():
    rng = np.random.default_rng(0)
    sentences, records = [], []
    for i in range(12):
        sense = "river" if i % 2 else "money"
        text = f"Sentence {i} about the bank."
        n_words = len(split_words(text))
        v = rng.normal(size=(2, n_words, 4)).astype(np.float32)
        target = find_target(text, "bank")[0]
        v[1, target] = np.eye(4)[0 if sense == "river" else 1] + rng.normal(size=4) * 0.05
        sentences.append(LabeledSentence(text, sense))
        records.append(make_record(text, v))
    sentences.append(LabeledSentence("An untagged bank."))
    records.append(random_record("An untagged bank.", n_layers=2)[0])

    occ = collect_target_vectors(records, sentences, "bank")
    frame = separation_by_layer(occ)
    assert list(frame.columns) == ["model", "layer", "relative_depth", "accuracy", "silhouette"]
    assert frame["layer"].tolist() == [0, 1]
    assert frame["relative_depth"].tolist() == [0.0, 1.0]
    assert frame.loc[1, "accuracy"] == 1.0 and frame.loc[1, "silhouette"] > 0.9
    assert frame.loc[0, "silhouette"] < 0.3


# ---------------------------------------------------------------- presets


def test_presets_have_enough_sentences_with_the_target():
    presets = load_presets()
    assert len(presets) >= 6 and "bank" in presets
    for target, preset in presets.items():
        assert len(preset.senses) >= 2, target
        for sense, texts in preset.senses.items():
            assert len(texts) >= 8, (target, sense)
            assert len(set(texts)) == len(texts)
            for text in texts:
                assert len(find_target(text, target)) == 1, (target, text)
        assert parse_sentences(preset.as_text()) == preset.sentences()


# ---------------------------------------------------------------- figures


def test_figures_and_coordinates_frame():
    text = "The <b>bank</b> & the river."
    records = [random_record(text, seed=s)[0] for s in range(4)]
    sentences = [LabeledSentence(text, s) for s in ["x", "y", "x", "<y>"]]
    occ = collect_target_vectors(records, sentences, "bank")
    xy = project(occ.vectors[-1], "pca")
    fig = sense_scatter([xy, xy], [occ, occ], ["model <1>", "model 2"])
    names = [t.name for t in fig.data]
    assert names == ["x", "y", "&lt;y&gt;", "x", "y", "&lt;y&gt;"]
    assert [t.showlegend for t in fig.data] == [True] * 3 + [False] * 3
    assert fig.data[0].hovertext[0] == occ.hover[0]
    assert fig.layout.annotations[0].text == "model &lt;1&gt;"

    frame = coordinates_frame(xy, occ, layer=2)
    assert list(frame.columns) == ["x", "y", "sentence", "sense", "model", "layer"]
    assert frame["sentence"].tolist() == [text] * 4 and (frame["model"] == "toy").all()

    matrix, order = cosine_matrix(occ.vectors[-1], occ.senses)
    heat = cosine_heatmap(matrix, [occ.senses[i] for i in order])
    assert heat.data[0].z.shape == (4, 4)
    assert len(heat.layout.shapes) == 4  # a boundary line each way for 2 boundaries

    sep = pd.concat([separation_by_layer(occ), separation_by_layer(occ).assign(model="other")])
    lines = separation_lines(sep, chance=0.5)
    assert len(lines.data) == 4  # two metrics × two models


def test_tied_centroids_score_chance_not_the_tie_break():
    from ctxlens.analysis.polysemy import nearest_centroid_accuracy

    same = np.ones((6, 4))  # a context-free layer: every occurrence has the same vector
    labels = ["a", "a", "a", "b", "b", "b"]
    assert nearest_centroid_accuracy(same, labels, leave_one_out=True) == pytest.approx(0.5)
    assert nearest_centroid_accuracy(same, labels, leave_one_out=False) == pytest.approx(0.5)


# ---------------------------------------------------------------- identical vectors


def one_vector_many_times(n=10, dim=64, seed=0):
    """A context-free layer: one vector per occurrence, the same each time, at varied norms
    (so normalising rounds each copy differently, as different BLAS kernels do)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=dim).astype(np.float32)
    scales = rng.uniform(0.5, 3.0, size=(n, 1)).astype(np.float32)
    return v * scales, np.array(["money"] * (n // 2) + ["river"] * (n - n // 2))


def test_identical_vectors_have_silhouette_zero_and_chance_accuracy():
    x, labels = one_vector_many_times()
    rng = np.random.default_rng(1)
    near = x.astype(np.float64) * (1 + 1e-9 * rng.normal(size=x.shape))  # 1e-9 relative
    bitwise = np.repeat(x[:1], len(x), axis=0)
    for vectors in (x, near, bitwise):
        assert all_identical(vectors)
        assert not cosine_distances(vectors).any()
        assert silhouette(vectors, labels) == 0.0  # exactly: noise must not read as senses
        # Every centroid ties: the credit is shared, the chance level of two senses.
        assert nearest_centroid_accuracy(vectors, labels, leave_one_out=True) == 0.5
        assert nearest_centroid_accuracy(vectors, labels, leave_one_out=False) == 0.5
        matrix, _ = cosine_matrix(vectors, list(labels))
        assert (matrix == 1.0).all()
    # Each "a" ties between both centroids (1/2); "b", seen once and left out, has no
    # centroid of its own to tie with (0).
    assert nearest_centroid_accuracy(x[:3], ["a", "a", "b"]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
def test_identical_vectors_project_to_one_point(method):
    x, _ = one_vector_many_times()
    np.testing.assert_array_equal(project(x, method), np.zeros((len(x), 2)))


def test_silhouette_of_separated_senses_matches_sklearn_cosine():
    from sklearn.metrics import silhouette_score

    x, labels = two_clusters()
    rng = np.random.default_rng(2)
    y = rng.normal(size=(30, 8)) + np.repeat(np.eye(8)[:3] * 2, 10, axis=0)
    y_labels = np.repeat(["a", "b", "c"], 10)
    for vectors, senses in ((x, labels), (y, y_labels)):
        expected = silhouette_score(vectors, senses, metric="cosine")
        assert silhouette(vectors, senses) == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert not all_identical(vectors)
    assert silhouette(x, labels) > 0.9


def test_cosine_distances_zero_only_below_the_threshold():
    a = np.array([1.0, 0.0])
    tiny = np.array([1.0, np.sqrt(2 * SAME_POINT) / 10])  # 1 - cos ≈ SAME_POINT / 100
    small = np.array([1.0, np.sqrt(2 * SAME_POINT) * 10])  # 1 - cos ≈ SAME_POINT * 100
    d = cosine_distances(np.array([a, tiny, small, -a]))
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert d[0, 1] == 0.0 and d[0, 2] == pytest.approx(100 * SAME_POINT, rel=0.01)
    assert d[0, 3] == 2.0
    assert all_identical(np.array([a, tiny])) and not all_identical(np.array([a, small]))
