"""`ctxlens embed --engine ray` on a local Ray (127.0.0.1): the same rows and vectors as the
local engine, for every word and for one target word, with one and with two model actors."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ctxlens.cli import main

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
