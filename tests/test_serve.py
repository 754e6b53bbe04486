"""`ctxlens serve` (Ray Serve on 127.0.0.1) against the same models in this process: records,
slices, head outputs and method results are equal; concurrent sessions share batches; every
failure is a message."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ctxlens.backends import wire
from ctxlens.backends.remote import RemoteBackend, connect
from ctxlens.errors import CapabilityMissing, InputError, ModelUnavailable, ServerUnavailable
from ctxlens.methods.attention import head_statistics, rollout
from ctxlens.methods.extraction import analyze_all
from ctxlens.methods.fill_mask import fill_mask
from ctxlens.methods.logit_lens import logit_lens
from ctxlens.methods.next_token import next_tokens
from ctxlens.models import registry
from ctxlens.record import ATTN, KEY, QUERY

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]

TEXTS = {
    "bert-mlm": "The river bank was [MASK] after the rain.",
    "gpt2": "She went to the bank to deposit",
    "elmo": "The bank of the river was wet.",
}


@pytest.fixture(scope="module")
def pairs(classroom_server, tiny_models):
    """(remote, local) backends of each served model."""
    names = {"bert-mlm": tiny_models["bert-mlm"], "gpt2": tiny_models["gpt2"], "elmo": "elmo-tiny-test"}
    return {kind: (connect(name, classroom_server.url), registry.get_model(name, "cpu"))
            for kind, name in names.items()}


def assert_same_record(remote, local):
    assert remote.tokens == local.tokens and remote.words == local.words
    for name in ("token_ids", "offsets", "word_ids", "special_mask", "segment_ids"):
        np.testing.assert_array_equal(getattr(remote, name), getattr(local, name))
    assert (remote.n_layers, remote.n_heads, remote.truncated) == (local.n_layers, local.n_heads, local.truncated)
    np.testing.assert_allclose(remote.hidden_states, local.hidden_states, atol=1e-6)


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "elmo"])
def test_records_equal_in_process_ones(pairs, kind):
    remote_lm, local_lm = pairs[kind]
    assert isinstance(remote_lm, RemoteBackend)
    remote, local = remote_lm.analyze([TEXTS[kind]])[0], local_lm.analyze([TEXTS[kind]])[0]
    assert_same_record(remote, local)
    if kind == "elmo":
        assert not remote.has_attention
        return
    np.testing.assert_allclose(remote.attentions, local.attentions, atol=1e-6)
    # Slices fetched alone (only they cross the network) equal the local slices.
    for name, layer, index in [(ATTN, 1, (0,)), (QUERY, 0, (1, slice(2, 5))), (KEY, 1, ([0, 1], slice(None), 3))]:
        np.testing.assert_allclose(remote.acts.numpy(name, layer, index), local.acts.numpy(name, layer, index),
                                   atol=1e-6)
    head_r, head_l = remote.head, local.head
    assert head_r.kind == head_l.kind
    np.testing.assert_array_equal(head_r.top_ids, head_l.top_ids)
    np.testing.assert_allclose(head_r.logits, head_l.logits, atol=1e-5)


def test_pairs_and_cut_inputs_equal_in_process_ones(pairs):
    remote_lm, local_lm = pairs["bert-mlm"]
    long = " ".join(["the bank of the river"] * 40)
    remote = remote_lm.analyze([long], ["money in the bank"], 20)[0]
    local = local_lm.analyze([long], ["money in the bank"], 20)[0]
    assert remote.truncated and remote.n_tokens == 20
    assert_same_record(remote, local)


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2"])
def test_method_results_equal_in_process_ones(pairs, kind):
    remote_lm, local_lm = pairs[kind]
    remote, local = remote_lm.analyze([TEXTS[kind]])[0], local_lm.analyze([TEXTS[kind]])[0]
    for stat, values in head_statistics(local).items():
        np.testing.assert_allclose(head_statistics(remote)[stat], values, atol=1e-6)
    np.testing.assert_allclose(rollout(remote, 1), rollout(local, 1), atol=1e-6)
    lens_r, lens_l = logit_lens(remote_lm, remote), logit_lens(local_lm, local)  # unembed on the server
    np.testing.assert_array_equal(lens_r.final_rank, lens_l.final_rank)
    np.testing.assert_allclose(lens_r.final_prob, lens_l.final_prob, atol=1e-5)
    if kind == "bert-mlm":
        got = [f for s in fill_mask(remote_lm, TEXTS[kind]).slots for f in s.fillers]
        want = [f for s in fill_mask(local_lm, TEXTS[kind]).slots for f in s.fillers]
    else:
        got, want = next_tokens(remote_lm, TEXTS[kind]).candidates, next_tokens(local_lm, TEXTS[kind]).candidates
    assert [f.token_ids for f in got] == [f.token_ids for f in want]
    np.testing.assert_allclose([f.prob for f in got], [f.prob for f in want], atol=1e-6)


def test_sentence_lists_go_through_the_registry(classroom_server, tiny_models, monkeypatch):
    """With CTXLENS_SERVER set, the app's entry points use the server: same vectors."""
    texts = [f"The bank number {i} was by the river." for i in range(12)]
    local = analyze_all(tiny_models["bert-mlm"], texts, device="cpu")
    monkeypatch.setenv("CTXLENS_SERVER", classroom_server.url)
    status = registry.model_status(registry.spec_for(tiny_models["bert-mlm"]))
    assert status.state == "ready" and classroom_server.url in status.detail
    remote = analyze_all(tiny_models["bert-mlm"], texts)
    assert isinstance(registry.get_model(tiny_models["bert-mlm"]), RemoteBackend)
    assert remote.cut.n_read == local.cut.n_read
    for r, loc in zip(remote, local, strict=True):
        np.testing.assert_allclose(r.hidden(-1), loc.hidden(-1), atol=1e-6)


def test_concurrent_sessions_share_batches(pairs, classroom_server):
    """30 sessions at once, each its own sentence: the server runs them in batches > 1."""
    remote_lm, local_lm = pairs["gpt2"]
    texts = [f"Session {i} typed about the bank and the river {i % 7}" for i in range(30)]
    before = classroom_server.get("/v1/stats")[remote_lm.name]["batch_sizes"]
    results, errors = [None] * 30, []

    def session(i):
        try:
            results[i] = remote_lm.analyze([texts[i]])[0].hidden(-1)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    after = classroom_server.get("/v1/stats")[remote_lm.name]["batch_sizes"]
    new = {int(k): v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    assert sum(size * n for size, n in new.items()) == 30  # every sentence computed once
    assert max(new) > 1, f"no batching across sessions: {new}"
    for text, got in zip(texts, results):
        np.testing.assert_allclose(got, local_lm.analyze([text])[0].hidden(-1), atol=1e-5)


def test_every_failure_is_a_message(pairs, classroom_server):
    remote_lm, _ = pairs["bert-mlm"]
    with pytest.raises(InputError, match="empty"):
        remote_lm.analyze(["   "])
    with pytest.raises(ModelUnavailable, match="does not serve"):
        connect("no-such-model", classroom_server.url)
    with pytest.raises(CapabilityMissing, match="classroom server"):
        remote_lm.run(remote_lm.encode(["the bank"]), {ATTN}, grad=True)
    with pytest.raises(CapabilityMissing, match="classroom server"):
        remote_lm.model  # noqa: B018 - the weights are not in this process
    assert getattr(remote_lm, "model", None) is None  # getattr's default still works
    with pytest.raises(ServerUnavailable, match="not answering"):
        connect("bert-mlm", "http://127.0.0.1:9")  # nothing listens on the discard port


def test_wire_round_trip():
    meta = {"words": [["bank", 0, 4, 0]], "text": "ü 😀 <b>"}
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": np.array([True, False]), "c": torch.zeros(0, 4)}
    got_meta, got = wire.unpack(wire.pack(meta, tensors))
    assert got_meta == meta
    np.testing.assert_array_equal(got["a"].numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(got["b"].numpy(), [True, False])
    assert got["c"].shape == (0, 4)
    t = torch.arange(60).reshape(3, 4, 5)
    for index in [(1,), (slice(0, 2), 3), ([0, 2], slice(None), 4), (np.array([2, 1]),), (slice(None, None, 2),)]:
        parts = wire.index_to_json(index)
        np.testing.assert_array_equal(t[wire.index_from_json(parts)].numpy(), t.numpy()[index])
    assert wire.index_to_json((Ellipsis,)) is None  # fetched whole, sliced here


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2"])
def test_attribution_runs_on_the_server_and_equals_in_process(pairs, kind):
    """The gradients need the weights: the server runs the method, only the scores come back."""
    from ctxlens.methods import attribution as at
    from ctxlens.methods import targets as tg

    cases = []  # (model, subject, target): remote, then local
    for lm in pairs[kind]:
        subj = at.subject(lm, TEXTS[kind])
        cases.append((lm, subj, tg.prediction_target(lm, subj.record)))
    assert cases[0][2] == cases[1][2]
    for method, options in [(at.IG, {"steps": 8}), (at.GRAD_X_INPUT, {}), (at.OCCLUSION, {})]:
        got, want = (at.attribute(*case, method, **options) for case in cases)
        assert (got.method, got.target, got.tokens, got.words, got.options) == \
            (want.method, want.target, want.tokens, want.words, want.options)
        np.testing.assert_allclose(got.token_scores, want.token_scores, atol=1e-5)
        np.testing.assert_allclose(got.word_scores, want.word_scores, atol=1e-5)
        assert got.value == pytest.approx(want.value, abs=1e-5)


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "app" / "pages").glob("*.py")) + ["Home.py"])
def test_every_page_on_the_server_draws_or_says_why(classroom_server, tiny_models, monkeypatch, page):
    """With CTXLENS_SERVER set, no page shows a traceback: it draws from the server's models,
    or says in the page that a view needs the weights in the app's process."""
    from apptest import open_page

    monkeypatch.setenv("CTXLENS_SERVER", classroom_server.url)
    path = ROOT / "app" / ("pages" if page != "Home.py" else "") / page
    at = open_page(str(path), [tiny_models["bert-mlm"], tiny_models["gpt2"]])
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert all("classroom server" in e or "needs" in e for e in errors), errors
