"""A corpus's word vectors (from records, from `ctxlens embed` Parquet) and the corpus search,
on the tiny random BERT: each checked against an independent computation."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctxlens.analysis import corpus as corpus_module
from ctxlens.analysis.corpus import concat, from_parquet, from_records
from ctxlens.analysis.words import split_words
from ctxlens.errors import InputError
from ctxlens.methods.corpus import corpus_words, neighbours_across_layers, query_word, search
from ctxlens.methods.extraction import analyze_all, extract_to_parquet

# Distinct sentences (no exact-tie duplicates), words of the tiny vocabulary; "bank" four times.
TEXTS = [
    "The river bank was wet after the rain.",
    "She went to the bank to deposit money.",
    "The capital of France is Paris.",
    "Who played the game at the house?",
    "A cat sat on the mat with a dog.",
    "The bank by the river and the bank in the city.",
    "The dog sat by the water.",
]
N_LAYERS = 3  # the tiny models: embeddings + 2 layers

@pytest.fixture(scope="module")
def bert(tiny_models):
    return tiny_models["bert-mlm"]


@pytest.fixture(scope="module")
def records(bert):
    return analyze_all(bert, TEXTS, device="cpu")


@pytest.fixture(scope="module")
def corpus(bert):
    return corpus_words(bert, TEXTS, device="cpu")


def pooled_by_hand(record, w, pooling):
    """The word's vector from the tokens the tokenizer assigned it (record.word_ids)."""
    tokens = np.flatnonzero(record.word_ids == w)
    states = np.asarray(record.hidden_states, np.float64)
    return {"mean": states[:, tokens].mean(axis=1), "first": states[:, tokens[0]],
            "last": states[:, tokens[-1]]}[pooling]


# ---------------------------------------------------------------- from records


@pytest.mark.parametrize("pooling", ["mean", "first", "last"])
def test_from_records_pools_every_word_as_by_hand(records, pooling):
    table = from_records(records, TEXTS, pooling)
    expected_rows = [(s, w) for s, text in enumerate(TEXTS) for w in range(len(split_words(text)))]
    assert list(zip(table.sentence_id.tolist(), table.word_index.tolist())) == expected_rows
    assert table.vectors.shape == (N_LAYERS, len(expected_rows), 32) and table.vectors.dtype == np.float32
    assert table.layers.tolist() == [0, 1, 2]
    np.testing.assert_allclose(table.relative_depth, [0.0, 0.5, 1.0])
    for i, (s, w) in enumerate(expected_rows):
        word = split_words(TEXTS[s])[w]
        assert table.words[i] == word.text == TEXTS[s][table.start[i]:table.end[i]]
        np.testing.assert_allclose(table.vectors[:, i], pooled_by_hand(records[s], w, pooling), rtol=1e-5, atol=1e-6)
    assert table.types()[0] == "the" and len(table) == len(expected_rows)
    assert table.rows_of(np.array([1, 6, 99]), np.array([4, 0, 0])).tolist() == [
        expected_rows.index((1, 4)), expected_rows.index((6, 0)), -1]


def test_concat_of_chunks_equals_one_table(records):
    whole = from_records(records, TEXTS)
    parts = [from_records(records[a:b], TEXTS, first_id=a) for a, b in ((0, 3), (3, 4), (4, len(TEXTS)))]
    joined = concat(parts)
    for field in ("sentence_id", "word_index", "start", "end", "layers", "relative_depth", "vectors"):
        np.testing.assert_array_equal(getattr(joined, field), getattr(whole, field))
    assert joined.words == whole.words and joined.texts == whole.texts == TEXTS


def test_corpus_words_equals_the_records_table(corpus, records):
    direct = from_records(records, TEXTS)
    np.testing.assert_array_equal(corpus.sentence_id, direct.sentence_id)
    np.testing.assert_array_equal(corpus.word_index, direct.word_index)
    np.testing.assert_allclose(corpus.vectors, direct.vectors, rtol=1e-5, atol=1e-5)


def test_spans_of_a_sentence_with_a_control_character(bert):
    texts = ["\x07The cat sat on the mat.", "The dog sat."]
    table = corpus_words(bert, texts, device="cpu")
    for i, word in enumerate(table.words):
        text = table.texts[table.sentence_id[i]]
        assert text[table.start[i]:table.end[i]] == word
        assert split_words(text)[table.word_index[i]].text == word


def test_query_word_in_a_sentence_with_a_control_character(bert):
    clean, raw = "The cat sat on the mat.", "\x07The cat sat on the mat."
    table = corpus_words(bert, [clean], device="cpu")
    query = query_word(bert, raw, "cat", layers=table.layers)
    assert query.text == clean and query.text[query.start:query.end] == "cat"
    np.testing.assert_allclose(query.vectors, table.vectors[:, table.words.index("cat")], rtol=1e-4, atol=1e-4)


def test_from_records_refuses_empty_input():
    with pytest.raises(InputError):
        from_records([], [])


# ---------------------------------------------------------------- Parquet from `ctxlens embed`


@pytest.fixture(scope="module")
def parquet_files(bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("embed")
    paths = {"all": folder / "all.parquet", "subset": folder / "subset.parquet", "bank": folder / "bank.parquet"}
    extract_to_parquet(paths["all"], bert, TEXTS, device="cpu", batch_size=3)
    extract_to_parquet(paths["subset"], bert, TEXTS, layers="0,-1", device="cpu", batch_size=3)
    extract_to_parquet(paths["bank"], bert, TEXTS, target="bank", layers="1", device="cpu", batch_size=3)
    return paths


def check_against_corpus(table, corpus, layers):
    """Every word of `table` is the same word, span and vectors (at `layers`) as in `corpus`."""
    assert table.layers.tolist() == layers
    np.testing.assert_allclose(table.relative_depth, np.asarray(layers) / 2)
    assert table.model == corpus.model
    for i, word in enumerate(table.words):
        text = table.texts[table.sentence_id[i]]
        assert text[table.start[i]:table.end[i]] == word == split_words(text)[table.word_index[i]].text
        row = corpus.rows_of([TEXTS.index(text)], [table.word_index[i]])[0]
        assert row >= 0 and corpus.words[row] == word
        np.testing.assert_allclose(table.vectors[:, i], corpus.vectors[layers, row], rtol=1e-5, atol=1e-5)


def test_parquet_all_layers_equals_corpus_words(parquet_files, corpus):
    table = from_parquet(parquet_files["all"], 2**30)
    assert table.texts == TEXTS and len(table) == len(corpus)
    np.testing.assert_array_equal(table.sentence_id, corpus.sentence_id)
    np.testing.assert_array_equal(table.word_index, corpus.word_index)
    check_against_corpus(table, corpus, [0, 1, 2])


def test_parquet_layer_subset(parquet_files, corpus):
    table = from_parquet(parquet_files["subset"], 2**30)
    assert table.vectors.shape == (2, len(corpus), 32)
    check_against_corpus(table, corpus, [0, 2])
    assert table.layer_row(2) == 1
    with pytest.raises(InputError, match="not layer 1"):
        table.layer_row(1)


def test_parquet_target_only(parquet_files, corpus):
    table = from_parquet(parquet_files["bank"], 2**30)
    with_bank = [t for t in TEXTS if "bank" in t]
    assert table.texts == with_bank  # sentences without the target are not in the file
    assert table.words == ["bank"] * 4
    assert table.sentence_id.tolist() == [0, 1, 2, 2]
    check_against_corpus(table, corpus, [1])


def test_parquet_over_the_budget_is_refused(parquet_files):
    size = pq.ParquetFile(parquet_files["all"]).metadata.num_rows * 32 * 4  # float32 vectors
    with pytest.raises(InputError, match="budget"):
        from_parquet(parquet_files["all"], max_bytes=size // 4)


def test_parquet_that_is_not_ours_is_refused(parquet_files, tmp_path):
    text = tmp_path / "notes.parquet"
    text.write_text("not a parquet file\n")
    with pytest.raises(InputError, match="Cannot read"):
        from_parquet(text, 2**30)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"sentence_id": [0], "vector": [[1.0, 2.0]]}), other)
    with pytest.raises(InputError, match="not written by `ctxlens embed`: it has no sentence, word"):
        from_parquet(other, 2**30)


def test_parquet_of_two_models_is_refused(parquet_files, tmp_path):
    table = pq.read_table(parquet_files["subset"])
    models = table["model"].to_pylist()
    half = len(models) // 2
    two = table.set_column(table.schema.get_field_index("model"), "model",
                           pa.array(models[:half] + ["another-model"] * (len(models) - half)))
    path = tmp_path / "two.parquet"
    pq.write_table(two, path)
    with pytest.raises(InputError, match="2 models"):
        from_parquet(path, 2**30)


# ---------------------------------------------------------------- the search


def brute_force(corpus, query_vector, layer_position):
    x = corpus.vectors[layer_position].astype(np.float64)
    q = np.asarray(query_vector, np.float64)
    return x @ q / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))


def found_rows(corpus, frame):
    """Corpus rows of a search answer, by (sentence, start)."""
    where = {(s, b): i for i, (s, b) in enumerate(zip(corpus.sentence_id.tolist(), corpus.start.tolist()))}
    return np.array([where[(s, b)] for s, b in zip(frame.sentence_id, frame.start)])


def check_top_k(frame, cos, k):
    """frame is the k best by brute-force cosine (a tie at the k-th place may go either way)."""
    rows = frame["_row"].to_numpy()
    assert len(frame) == k and frame["rank"].tolist() == list(range(1, k + 1))
    np.testing.assert_allclose(frame.cosine, cos[rows], atol=1e-6)
    assert (np.diff(frame.cosine) <= 1e-9).all()
    rest = np.setdiff1d(np.arange(len(cos)), rows)
    assert cos[rest].max() <= frame.cosine.min() + 1e-6
    expected = np.argsort(-cos, kind="stable")[:k]
    clear = np.abs(cos[expected] - frame.cosine.min()) > 1e-6  # away from a possible tie at the cut
    assert set(expected[clear]) <= set(rows)


@pytest.fixture(scope="module")
def bank_query(bert, corpus):
    return query_word(bert, TEXTS[5], "bank", 1, layers=corpus.layers)  # the second "bank"


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_search_is_the_brute_force_cosine_ranking(corpus, bank_query, layer):
    k = 6
    frame = search(corpus, bank_query, layer, k)
    frame["_row"] = found_rows(corpus, frame)
    cos = brute_force(corpus, bank_query.vectors[layer], layer)
    check_top_k(frame, cos, k)
    # The query's own occurrence is in the corpus: first, at cosine 1 (batched vs single forward).
    top = frame.iloc[0]
    assert (top.sentence_id, top.start, top.word) == (5, TEXTS[5].index("bank in"), "bank")
    assert top.cosine == pytest.approx(1.0, abs=1e-4)
    assert frame.same_word.tolist() == [w.casefold() == "bank" for w in frame.word]
    for _, hit in frame.iterrows():
        assert hit.sentence == TEXTS[hit.sentence_id] and hit.sentence[hit.start:hit.end] == hit.word


def test_query_word_vectors_and_occurrences(bert, corpus, bank_query):
    second = TEXTS[5].index("bank in")
    assert (bank_query.text, bank_query.word, bank_query.start, bank_query.end) == (TEXTS[5], "bank", second,
                                                                                     second + 4)
    w = next(i for i, word in enumerate(split_words(TEXTS[5])) if word.start == second)
    row = corpus.rows_of([5], [w])
    np.testing.assert_allclose(bank_query.vectors, corpus.vectors[:, row[0]], rtol=1e-4, atol=1e-5)
    first = query_word(bert, TEXTS[5], "Bank", 0, layers=np.array([2]))  # case-folded match, one layer
    assert first.start == 4 and first.vectors.shape == (1, 32)
    with pytest.raises(InputError, match="does not occur"):
        query_word(bert, TEXTS[5], "money", layers=corpus.layers)
    with pytest.raises(InputError, match="occurs 2 time"):
        query_word(bert, TEXTS[5], "bank", 2, layers=corpus.layers)
    with pytest.raises(InputError, match="occurs 1 time"):
        query_word(bert, TEXTS[0], "bank", -1, layers=corpus.layers)


def test_search_on_a_layer_subset_reads_the_right_layer(corpus, bank_query):
    # A corpus that holds layers 0 and 2 only (as a `--layers 0,-1` file does), and the query at those layers.
    subset = corpus_module.CorpusWords(**{**corpus.__dict__, "layers": np.array([0, 2]),
                                          "relative_depth": corpus.relative_depth[[0, 2]],
                                          "vectors": corpus.vectors[[0, 2]]})
    query = type(bank_query)(**{**bank_query.__dict__, "vectors": bank_query.vectors[[0, 2]]})
    frame = search(subset, query, 2, 5)
    np.testing.assert_allclose(frame.cosine, search(corpus, bank_query, 2, 5).cosine, atol=1e-9)
    with pytest.raises(InputError, match="not layer 1"):
        search(subset, query, 1, 5)


def test_neighbours_across_layers(corpus, bank_query):
    k = 5
    frame = neighbours_across_layers(corpus, bank_query, k)
    assert frame.layer.tolist() == [0, 1, 2]
    np.testing.assert_allclose(frame.relative_depth, [0.0, 0.5, 1.0])
    assert np.isnan(frame.kept_from_previous.iloc[0])
    kept = frame.kept_from_previous.iloc[1:]
    assert ((kept >= 0) & (kept <= k)).all()
    assert ((frame.same_word >= 1) & (frame.same_word <= k)).all()  # the query's own occurrence at least
    tops = []
    for layer in range(3):
        cos = brute_force(corpus, bank_query.vectors[layer], layer)
        order = np.argsort(-cos, kind="stable")
        assert cos[order[k - 1]] - cos[order[k]] > 1e-6, "no tie at the k-th place, so the sets are exact"
        tops.append(set(order[:k].tolist()))
        assert frame.mean_cosine[layer] == pytest.approx(cos[order[:k]].mean(), abs=1e-6)
        assert frame.same_word[layer] == sum(corpus.words[i].casefold() == "bank" for i in order[:k])
        assert frame.top_word[layer] == "bank" and frame.top_sentence[layer] == TEXTS[5]
    assert kept.tolist() == [len(tops[0] & tops[1]), len(tops[1] & tops[2])]
