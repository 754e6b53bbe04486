"""`ctxlens embed --engine ray` on a local Ray (127.0.0.1): the same rows and vectors as the
local engine, for every word and for one target word, with one and with two model actors, from
text, JSON Lines and Parquet files; the same errors; the actors' resources."""

import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ctxlens.cli import main
from ctxlens.errors import InputError
from ctxlens.methods.ray_extraction import extract_with_ray, worker_resources
from test_corpus_input import ERRORS, _bad_file, write_corpus

ray = pytest.importorskip("ray")  # an optional extra: the rest of the suite runs without it

KEYS = ["sentence_id", "word_index", "layer"]
WORDS = ["river", "money", "music", "storm", "bread", "train", "garden", "winter"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def _sentences(n: int) -> list[str]:
    """n sentences of varied lengths and words (a bank in every third)."""
    return [" ".join(["The", "bank" if i % 3 == 0 else WORDS[i % 8], "by", "the", *WORDS[: 1 + i % 7], "."])
            for i in range(n)]


def _rows(path) -> pd.DataFrame:
    return pq.read_table(str(path)).to_pandas().sort_values(KEYS).reset_index(drop=True)


def _same(local: pd.DataFrame, sharded: pd.DataFrame) -> None:
    assert list(sharded.columns) == list(local.columns)
    pd.testing.assert_frame_equal(local.drop(columns="vector"), sharded.drop(columns="vector"))
    np.testing.assert_allclose(np.stack(sharded.vector), np.stack(local.vector), atol=1e-5)


@pytest.mark.parametrize("workers, word", [(1, None), (2, "bank")])
def test_ray_engine_equals_the_local_engine(local_ray, tiny_models, tmp_path, capsys, workers, word):
    source = tmp_path / "sentences.txt"
    source.write_text("\n".join(_sentences(500)))
    common = [str(source), "--model", tiny_models["bert-bare"], "--device", "cpu", "--layers", "0,-1",
              "--batch-size", "32", *(["--word", word] if word else [])]
    assert main(["embed", *common, "-o", str(tmp_path / "local.parquet")]) == 0
    assert main(["embed", *common, "-o", str(tmp_path / "shards"), "--engine", "ray", "--workers", str(workers)]) == 0
    assert len(list((tmp_path / "shards").glob("*.parquet"))) >= 1
    local, sharded = _rows(tmp_path / "local.parquet"), _rows(tmp_path / "shards")
    assert len(local) > 300 and (word is None or set(local.word) == {"bank"})
    _same(local, sharded)
    printed = capsys.readouterr()
    assert printed.out.count(f"wrote {len(local):,} rows") == 2
    if word:  # both engines name the same sentences without the word
        assert printed.err.count("sentences without 'bank'") == 2


@pytest.mark.parametrize("fmt, uri", [("jsonl", False), ("parquet", True)])
def test_ray_engine_reads_jsonl_and_parquet(local_ray, tiny_models, tmp_path, capsys, fmt, uri):
    path = write_corpus(tmp_path, fmt, _sentences(60), field="sentence")
    common = [path.as_uri() if uri else str(path), "--field", "sentence", "--model", tiny_models["bert-bare"],
              "--device", "cpu", "--layers", "0,-1", "--word", "bank"]
    assert main(["embed", *common, "-o", str(tmp_path / "local.parquet")]) == 0
    assert main(["embed", *common, "-o", str(tmp_path / "shards"), "--engine", "ray"]) == 0
    local = _rows(tmp_path / "local.parquet")
    assert sorted(set(local.sentence_id)) == list(range(0, 60, 3))  # ids skip the null and blank values
    _same(local, _rows(tmp_path / "shards"))
    err = capsys.readouterr().err
    assert err.count("Sentences 60 of 60, ") == 2 and err.count("40 sentences without 'bank'") == 2


@pytest.mark.parametrize("case", ["no file", "missing field", "numbers", "empty", "not JSON", "not UTF-8"])
def test_ray_engine_reader_errors_are_the_local_ones(local_ray, tmp_path, capsys, case):
    path, field = _bad_file(tmp_path, case)
    out = tmp_path / "shards"
    assert main(["embed", str(path), "--field", field, "--model", "unused", "-o", str(out), "--engine", "ray"]) == 2
    assert re.match("error: .*" + ERRORS[case], capsys.readouterr().err.splitlines()[-1]) and not out.exists()


def test_ray_engine_errors(local_ray, tiny_models, tmp_path, capsys):
    source = tmp_path / "s.txt"
    source.write_text("The riverbank flooded.\nThe bank.\n")
    used = tmp_path / "used"
    used.mkdir()
    (used / "part-00000.parquet").write_bytes(b"")
    (tmp_path / "s.csv").write_text("sentence\nThe bank.\n")
    cases = [  # (arguments, what the person reads); none of these starts a model actor
        ([str(source), "-o", str(used)], "already exists: give a new folder"),
        ([str(tmp_path / "s.csv"), "-o", str(tmp_path / "a")], "The Ray engine reads text, JSON Lines or Parquet"),
        ([str(source), "-o", str(tmp_path / "b"), "--word", "flood"], "only inside other words: 'flooded'"),
        ([str(source), "-o", str(tmp_path / "c"), "--device", "cuda"], "The device cuda needs GPUs per worker"),
    ]
    for args, message in cases:
        assert main(["embed", *args, "--model", tiny_models["bert-bare"], "--engine", "ray"]) == 2
        assert message in capsys.readouterr().err
    for sentences, message in [([], "No sentences to analyse"), (["The riverbank."], "only inside other words")]:
        with pytest.raises(InputError, match=message):  # a list of sentences, not a file
            extract_with_ray(tmp_path / "e", "unused", sentences, target="bank")
    # an actor's error (here: no such model) comes back as its one-line message
    out = tmp_path / "d"
    assert main(["embed", str(source), "-o", str(out), "--model", "no/such-model", "--engine", "ray"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("error: Model 'no/such-model' is not available: it is not in the catalog")
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_worker_resources():
    cpu, gpu = {"CPU": 8.0}, {"CPU": 8.0, "GPU": 2.0}
    assert worker_resources("auto", 2, cpu) == ("cpu", {"num_cpus": 4})  # a local Ray's CPUs, shared
    assert worker_resources("cpu", 3, cpu, local=False) == ("cpu", {"num_cpus": 1})
    assert worker_resources(None, 2, cpu, cpus_per_worker=3) == ("cpu", {"num_cpus": 3})
    assert worker_resources("auto", 2, gpu) == ("cuda", {"num_gpus": 1.0})  # one GPU each by default
    assert worker_resources("cuda:1", 4, gpu, gpus_per_worker=0.5) == ("cuda", {"num_gpus": 0.5})
    assert worker_resources("cpu", 2, gpu) == ("cpu", {"num_cpus": 4})  # CPUs asked for: no GPU
    assert worker_resources("auto", 1, gpu, gpus_per_worker=0) == ("cpu", {"num_cpus": 8})
    assert worker_resources("mps", 1, cpu) == ("mps", {"num_cpus": 8})
    for device, cluster, gpus, message in [("cpu", gpu, 1, "need the device cuda or auto"),
                                           ("cuda", cpu, None, "needs GPUs per worker above 0"),
                                           ("tpu", cpu, None, "Unknown device"), ("auto", gpu, -1, "negative")]:
        with pytest.raises(InputError, match=message):
            worker_resources(device, 1, cluster, gpus_per_worker=gpus)
