"""Sentence files for `ctxlens embed` (`read_sentences`, the local engine's reader): text,
JSON Lines and Parquet, from a path and from a file:// URI, and the errors a person reads."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctxlens.cli import main
from ctxlens.errors import InputError
from ctxlens.methods.extraction import read_sentences

SENTENCES = ["The bank by the river.", "She went to the bank.", "A cat sat on the mat.", "Bank, bank | bank."]
SUFFIX = {"text": ".txt", "jsonl": ".jsonl", "parquet": ".parquet"}


def write_corpus(folder, fmt: str, sentences: list[str], field: str = "text", name: str = "corpus"):
    """`sentences` as a file of that format, with what the readers skip: blank lines (a BOM
    and padding in text), null and blank values (JSON Lines, Parquet, in small row groups)."""
    path = folder / f"{name}{SUFFIX[fmt]}"
    values = [*sentences[:1], None, "   ", *sentences[1:]]
    if fmt == "text":
        path.write_text("\ufeff" + "\n".join(f"  {v}" if v else "" for v in values) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": i, field: v}) + "\n" for i, v in enumerate(values)))
    else:
        pq.write_table(pa.table({"id": range(len(values)), field: values}), path, row_group_size=7)
    return path


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
@pytest.mark.parametrize("fmt", ["text", "jsonl", "parquet"])
def test_each_format_from_a_path_and_a_uri(tmp_path, fmt, uri):
    path = write_corpus(tmp_path, fmt, SENTENCES)
    assert read_sentences(path.as_uri() if uri else path) == SENTENCES


def test_the_format_and_field_options(tmp_path):
    path = write_corpus(tmp_path, "jsonl", SENTENCES, field="sentence")
    assert read_sentences(path, field="sentence") == SENTENCES
    log = path.rename(tmp_path / "corpus.log")
    assert read_sentences(log, "jsonl", "sentence") == SENTENCES
    assert read_sentences(log, "text")[0] == json.dumps({"id": 0, "sentence": SENTENCES[0]})


def _bad_file(tmp_path, case):
    """A file the readers refuse, and the field asked of it."""
    if case == "missing field":
        return write_corpus(tmp_path, "parquet", SENTENCES), "sentence"
    if case == "numbers":
        return write_corpus(tmp_path, "jsonl", SENTENCES), "id"
    path = tmp_path / {"no file": "absent.txt", "unknown format": "corpus.docx", "empty": "empty.parquet",
                       "not JSON": "bad.jsonl", "not UTF-8": "bad.txt"}[case]
    content = {"unknown format": b"A sentence.", "not JSON": b'{"text": "fine"}\n{"text": oops}\n',
               "not UTF-8": b"caf\xe9 au lait\n"}
    if case == "empty":
        pq.write_table(pa.table({"text": pa.array([" ", None], pa.string())}), path)
    elif case in content:
        path.write_bytes(content[case])
    return path, "text"


ERRORS = {
    "no file": "absent.txt does not exist",
    "unknown format": "Cannot tell how to read .*corpus.docx",
    "missing field": "has no field 'sentence' \\(it has id, text\\)",
    "numbers": "holds int values where sentences should be",
    "empty": "holds no sentences",
    "not JSON": "is not a valid jsonl file",
    "not UTF-8": "is not UTF-8 text",
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_say_what_is_wrong(tmp_path, case):
    path, field = _bad_file(tmp_path, case)
    with pytest.raises(InputError, match=ERRORS[case]):
        read_sentences(path, field=field)


def test_unknown_scheme_and_folder(tmp_path):
    with pytest.raises(InputError, match="Cannot open nope://"):
        read_sentences("nope://bucket/corpus.txt")
    with pytest.raises(InputError, match="is not a file"):
        read_sentences(tmp_path, "text")


def test_cli_local_engine_reads_a_jsonl_uri(tiny_models, tmp_path, capsys):
    path = write_corpus(tmp_path, "jsonl", SENTENCES, field="sentence")
    out = tmp_path / "bank.parquet"
    common = ["--model", tiny_models["bert-bare"], "--device", "cpu", "--word", "bank", "--layers", "-1"]
    assert main(["embed", path.as_uri(), "-o", str(out), *common]) == 2  # the default field is "text"
    assert "has no field 'text' (it has id, sentence)" in capsys.readouterr().err and not out.exists()
    assert main(["embed", path.as_uri(), "--field", "sentence", "-o", str(out), *common]) == 0
    frame = pq.read_table(out).to_pandas()
    assert frame["sentence_id"].tolist() == [0, 1, 3, 3, 3] and set(frame["word"].str.lower()) == {"bank"}
    printed = capsys.readouterr()
    assert "Sentences 4 of 4, " in printed.err and "1 sentences without 'bank' (ids 2)" in printed.err
