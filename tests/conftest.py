import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "app"))  # pages import the shared `ui` package
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("CTXLENS_DEVICE", "cpu")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Folder paths of the tiny models, keyed by kind (see tiny_models.build_all)."""
    from tiny_models import build_all

    return {k: str(v) for k, v in build_all(tmp_path_factory.mktemp("tiny")).items()}


@pytest.fixture(scope="session")
def classroom_server(tiny_models):
    """`ctxlens serve` with a tiny encoder, a tiny causal LM and the tiny ELMo (started on the
    first test that asks: a local Ray takes about a minute here)."""
    pytest.importorskip("ray.serve")
    from classroom_server import ClassroomServer

    server = ClassroomServer([tiny_models["bert-mlm"], tiny_models["gpt2"], "elmo-tiny-test"]).start()
    yield server
    server.stop()
