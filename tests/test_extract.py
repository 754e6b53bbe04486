"""Batched word-vector extraction and `ctxlens embed` (tiny BERT and the tiny ELMo)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from ctxlens.methods.extraction import analyze_all, read_sentences
from ctxlens.analysis.extract import COLUMNS, locate_target, parse_layers, word_vectors
from ctxlens.analysis.words import split_words
from ctxlens.cli import main
from ctxlens.errors import InputError

# Different lengths, so batches are padded; "bank" twice in one sentence.
SENTENCES = [
    "The river bank was wet after the rain.",
    "She went to the bank to deposit money.",
    "A cat sat on the mat.",
    "The bank by the river and the bank in the city.",
    "Who played the game at the house with a dog?",
]


@pytest.fixture(params=["bert-mlm", "elmo-tiny-test"])
def model_name(request, tiny_models):
    return tiny_models["bert-mlm"] if request.param == "bert-mlm" else "elmo-tiny-test"


def test_batched_equals_one_at_a_time(model_name):
    batched = word_vectors(analyze_all(model_name, SENTENCES, device="cpu", batch_size=3))
    single = word_vectors(analyze_all(model_name, SENTENCES, device="cpu", batch_size=1))
    assert len(batched) == len(single) > 0
    np.testing.assert_array_equal(batched.sentence_id, single.sentence_id)
    np.testing.assert_array_equal(batched.layer, single.layer)
    np.testing.assert_allclose(batched.vectors, single.vectors, atol=1e-5, rtol=0)


def test_word_vectors_rows_follow_words_then_layers(tiny_models):
    records = analyze_all(tiny_models["bert-mlm"], SENTENCES[:2], device="cpu")
    rows = word_vectors(records, first_id=10, layers=[0, 2], target="bank")
    assert rows.sentence_id.tolist() == [10, 10, 11, 11]
    assert rows.layer.tolist() == [0, 2, 0, 2]
    assert rows.relative_depth.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert rows.word == ["bank"] * 4
    assert rows.word_index.tolist() == [2, 2, 4, 4]
    np.testing.assert_allclose(rows.vectors[1], records[0].hidden_states[2, 3], rtol=1e-6)  # [CLS] the river bank
    every = word_vectors(records, layers=[1])
    assert len(every) == sum(len(split_words(s)) for s in SENTENCES[:2])


def test_locate_target_and_the_absent_message():
    where = locate_target(["The riverbank flooded.", "Banking is dull.", "A bank, a Bank."], "bank")
    assert where.hits == [[], [], [1, 4]]
    assert where.missing == [0, 1] and where.found
    assert locate_target(["A bank, a Bank."], "bank", "first").hits == [[1]]
    absent = locate_target(["The riverbank flooded.", "Banking is dull."], "bank")
    assert not absent.found
    assert absent.absent_message() == (
        "'bank' does not occur as a whole word in any sentence; it appears only inside "
        "other words: 'riverbank', 'Banking'."
    )
    assert locate_target(["Nothing here."], "bank").absent_message().endswith("any sentence.")
    with pytest.raises(InputError):
        locate_target(["x"], "two words")


def test_parse_layers():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("0, -1, 3", 4) == [0, 3]
    for bad in ("4", "-5", "last"):
        with pytest.raises(InputError):
            parse_layers(bad, 4)


def test_read_sentences_text_and_csv(tmp_path):
    txt = tmp_path / "s.txt"
    txt.write_text("\ufeffFirst one.\n\n  Second | with a bar.  \n", encoding="utf-8")
    assert read_sentences(txt) == ["First one.", "Second | with a bar."]
    csv = tmp_path / "s.csv"
    csv.write_text('sense,sentence\nfin,"A bank, here."\nriv,The bank.\n', encoding="utf-8")
    assert read_sentences(csv) == ["A bank, here.", "The bank."]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="no sentences"):
        read_sentences(tmp_path / "empty.txt")


def test_cli_embed_writes_parquet(tiny_models, tmp_path, capsys):
    folder = tiny_models["bert-mlm"]
    source = tmp_path / "sentences.txt"
    source.write_text("\n".join(SENTENCES), encoding="utf-8")
    out = tmp_path / "bank.parquet"
    code = main(["embed", str(source), "-o", str(out), "--model", folder, "--word", "bank",
                 "--layers", "0,-1", "--batch-size", "2", "--device", "cpu"])
    assert code == 0
    table = pq.read_table(out)
    assert table.column_names == list(COLUMNS)
    assert str(table.schema.field("vector").type) == "list<element: float>"
    frame = table.to_pandas()
    # bank: once in sentences 0 and 1, twice in 3; two layers each.
    assert frame["sentence_id"].tolist() == [0, 0, 1, 1, 3, 3, 3, 3]
    assert frame["layer"].tolist() == [0, 2] * 4
    assert frame["word_index"].tolist() == [2, 2, 4, 4, 1, 1, 7, 7]
    assert set(frame["word"]) == {"bank"} and set(frame["model"]) == {folder}
    assert frame["sentence"].iloc[4] == SENTENCES[3]
    assert all(len(v) == 32 for v in frame["vector"])
    expected = analyze_all(folder, [SENTENCES[3]], device="cpu")[0].hidden_states[2, 8]  # 2nd bank
    np.testing.assert_allclose(frame["vector"].iloc[7], expected, rtol=1e-5, atol=1e-6)
    err = capsys.readouterr().err
    assert "2 sentences without 'bank' (ids 2, 4)" in err


def test_cli_embed_every_word_of_a_csv_with_elmo(tmp_path):
    source = tmp_path / "s.csv"
    source.write_text("sentence\nDogs bark.\nThe cat sat on the mat.\n", encoding="utf-8")
    out = tmp_path / "all.parquet"
    assert main(["embed", str(source), "-o", str(out), "--model", "elmo-tiny-test", "--device", "cpu"]) == 0
    frame = pq.read_table(out).to_pandas()
    assert len(frame) == (3 + 7) * 3  # every word incl. punctuation, ELMo's 3 layers
    assert frame.groupby("sentence_id")["word"].first().tolist() == ["Dogs", "The"]
    assert sorted(set(frame["relative_depth"])) == [0.0, 0.5, 1.0]


def test_cli_embed_errors_are_messages(tmp_path, capsys):
    source = tmp_path / "s.txt"
    source.write_text("The riverbank flooded.\n", encoding="utf-8")
    out = tmp_path / "none.parquet"
    assert main(["embed", str(source), "-o", str(out), "--model", "elmo-tiny-test", "--word", "bank"]) == 2
    assert "only inside other words: 'riverbank'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["embed", str(source), "-o", str(out), "--model", "elmo-tiny-test", "--layers", "7"]) == 2
    assert "Layer 7 does not exist" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
