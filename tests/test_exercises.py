"""Predict-then-reveal exercises: every one poses on its embedded model, the model's answer is
checked against an independent computation where there is one, and the page reveals it."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest import ok

from ctxlens.analysis.attention import head_statistics
from ctxlens.methods import exercises as E
from ctxlens.models import catalog as cat
from ctxlens.models.registry import get_model

PAGE = str(Path(__file__).resolve().parents[1] / "app" / "pages" / "9_Exercises.py")


@pytest.fixture(scope="module")
def posed():
    return {k: e.ask(get_model(e.model, "cpu")) for k, e in E.EXERCISES.items()}


def _guess(at, key):
    """Exercise `key`'s answer buttons (keyed by its question, so a new sentence starts afresh)."""
    return next(r for r in at.radio if r.key.startswith(f"ex_{key}_") and r.key.endswith("_guess"))


def _reveal(at, key):
    return next(b for b in at.button if b.key.startswith(f"ex_{key}_") and b.key.endswith("_reveal"))


def test_at_least_eight_exercises_over_the_pages_on_embedded_models(posed):
    assert len(E.EXERCISES) >= 8 and len({e.page for e in E.EXERCISES.values()}) >= 6
    for key, p in posed.items():
        assert cat.CATALOG[E.EXERCISES[key].model].embedded or cat.CATALOG[E.EXERCISES[key].model].test_model
        assert len(set(p.choices)) == len(p.choices) >= 2 and 0 <= p.answer < len(p.choices), key
        assert p.question.endswith("?") and p.explanation, key


def test_the_next_word_is_the_models_argmax(posed):
    lm = get_model(E.SMOLLM, "cpu")
    ids = lm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        top = int(lm.model(input_ids=ids).logits[0, -1].argmax())
    p = posed["next-word"]
    assert p.choices[p.answer] == lm.tokenizer.decode([top]).strip()


def test_the_most_surprising_word_by_a_plain_forward(posed):
    lm = get_model(E.SMOLLM, "cpu")
    text = "The cat sat on the piano and played a sonata."
    enc = lm.tokenizer(text, return_offsets_mapping=True)
    with torch.no_grad():
        logprobs = lm.model(input_ids=torch.tensor([enc["input_ids"]])).logits[0].log_softmax(-1)
    bits = [-float(logprobs[i - 1, t]) / math.log(2) for i, t in enumerate(enc["input_ids"]) if i]
    words = {}
    for (start, end), b in zip(enc["offset_mapping"][1:], bits):
        word = text[start:end].strip(" .")
        if start >= len("The cat sat") and word.isalpha():
            words[word] = words.get(word, 0.0) + b
    p = posed["surprise"]
    assert p.choices[p.answer] == max(words, key=words.get)


def test_the_previous_token_head_by_the_numpy_statistics(posed):
    record = get_model(E.MINILM, "cpu").analyze(
        ["The quick brown fox jumps over the lazy dog near the quiet river bank."])[0]
    prev = head_statistics(record.attentions, record.special_mask, record.tokens)["prev"]
    layer, head = np.unravel_index(int(np.nanargmax(prev)), prev.shape)
    p = posed["prev-head"]
    assert p.choices[p.answer] == f"layer {layer}, head {head}"


def test_token_pieces_and_elmo_layers(posed):
    smollm = get_model(E.SMOLLM, "cpu")
    p = posed["pieces"]
    assert int(p.choices[p.answer]) == len(smollm.tokenizer("electroencephalography", add_special_tokens=False)["input_ids"])
    p = posed["elmo"]
    assert int(p.choices[p.answer]) == get_model(E.ELMO, "cpu").model.n_layers + 1


def test_the_word_that_matters_is_france(posed):
    p = posed["why-word"]
    assert p.choices[p.answer] == "France"  # occlusion, checked against re-running in test_why


def test_the_page_reveals_right_and_wrong_guesses_for_every_exercise(posed):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=300).run()
    ok(at)
    for key, p in posed.items():
        at.selectbox(key="ex_pick").set_value(key).run()
        wrong = p.choices[(p.answer + 1) % len(p.choices)]
        _guess(at, key).set_value(wrong).run()
        _reveal(at, key).click().run()
        ok(at)
        assert any("Not this time" in w.value for w in at.warning), key
        _guess(at, key).set_value(p.choices[p.answer]).run()
        _reveal(at, key).click().run()
        assert any(s.value.startswith("Right") for s in at.success), key
        assert at.query_params["ex"] == [key] or at.query_params["ex"] == key  # the link names it


def test_a_shared_link_opens_its_exercise():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=300)
    at.query_params["ex"] = "banks"
    at.run()
    ok(at)
    assert at.selectbox(key="ex_pick").value == "banks"
    assert any("bank" in m.value and "layer" in m.value for m in at.markdown)


@pytest.mark.parametrize("page, key", [("1_Attention.py", "prev-head"), ("3_Contextuality.py", "contextual")])
def test_a_page_offers_its_exercises_behind_a_toggle(page, key):
    from streamlit.testing.v1 import AppTest

    path = str(Path(PAGE).parent / page)
    at = AppTest.from_file(path, default_timeout=300).run()
    ok(at)
    assert not any(r.key.startswith(f"ex_{key}_") for r in at.radio)  # nothing runs until asked
    page_name = E.EXERCISES[key].page
    at.toggle(key=f"ex_on_{page_name}").set_value(True).run()
    choice = _guess(at, key).options[0]
    _guess(at, key).set_value(choice).run()
    _reveal(at, key).click().run()
    ok(at)
    assert at.success or any("Not this time" in w.value for w in at.warning)


def test_a_page_exercise_asks_about_the_sentence_in_view():
    from streamlit.testing.v1 import AppTest

    text = "My sister parked her red bicycle next to the old library."
    at = AppTest.from_file(str(Path(PAGE).parent / "1_Attention.py"), default_timeout=300).run()
    at.text_area(key="w_text").set_value(text).run()
    at.toggle(key="ex_on_Attention").set_value(True).run()
    ok(at)
    assert any(text in m.value.replace("\\", "") for m in at.markdown)
    record = get_model(E.MINILM, "cpu").analyze([text])[0]
    prev = head_statistics(record.attentions, record.special_mask, record.tokens)["prev"]
    layer, head = np.unravel_index(int(np.nanargmax(prev)), prev.shape)
    _guess(at, "prev-head").set_value(f"layer {layer}, head {head}").run()
    _reveal(at, "prev-head").click().run()
    assert any(m.value.startswith("Right") for m in at.success)


def test_a_sentence_too_short_for_the_question_gets_a_message():
    with pytest.raises(E.InputError, match="at least 5 words"):
        E.EXERCISES["surprise"].ask(get_model(E.SMOLLM, "cpu"), "Hello there.")
    p = E.EXERCISES["pieces"].ask(get_model(E.SMOLLM, "cpu"), "A hippopotamus swam.")
    assert "hippopotamus" in p.question
