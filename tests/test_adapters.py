"""Adapters and partial fine-tuning: component counts against hand counts, LoRA's formula against
peft, the Houlsby formula against real modules, and LoRA training that moves only the adapter and
the head (checksums against the checkpoint read by transformers itself)."""

import hashlib
import json

import pytest
import torch
import transformers as tf
from apptest import ok, open_tab

from ctxlens.errors import InputError
from ctxlens.methods import adapters as ad
from ctxlens.models.loading import load_hf, spec_for

FAMILIES = ("bert-mlm", "bert-nsp", "bert-bare", "bert-qa", "gpt2", "llama", "roberta", "distilbert")
D, LAYERS, FFN, POSITIONS = 32, 2, 64, 64  # tests/tiny_models.py's sizes


@pytest.fixture(scope="module")
def models(tiny_models):
    return {k: load_hf(spec_for(tiny_models[k]), "cpu").model for k in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_components_sum_to_the_total_and_nothing_is_unclassified(models, family):
    model = models[family]
    counts = ad.component_counts(model)
    assert list(counts) == list(ad.COMPONENTS)
    assert sum(counts.values()) == ad.parameter_count(model) == sum(p.numel() for p in model.parameters())
    assert counts["other"] == 0
    assert min(counts[c] for c in ("embeddings", "attention", "feed-forward", "norms")) > 0


def _other_families():
    """Families the project has no tiny checkpoint for (in memory: counting needs no weights file)."""
    size = dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=FFN)
    torch.manual_seed(0)
    return {
        "albert": tf.AlbertForPreTraining(tf.AlbertConfig(vocab_size=100, embedding_size=16, **size)),
        "electra": tf.ElectraForPreTraining(tf.ElectraConfig(vocab_size=100, embedding_size=16, **size)),
        "xlnet": tf.XLNetLMHeadModel(tf.XLNetConfig(vocab_size=100, d_model=D, n_layer=LAYERS, n_head=2, d_inner=FFN)),
        "t5": tf.T5ForConditionalGeneration(tf.T5Config(vocab_size=100, d_model=D, d_kv=16, d_ff=FFN, num_layers=LAYERS,
                                                        num_heads=2)),
    }


def test_other_families_are_classified_too():
    for name, model in _other_families().items():
        counts = ad.component_counts(model)
        assert sum(counts.values()) == ad.parameter_count(model) and counts["other"] == 0, name
        assert ad.lora_count(model, 4, "attention-ffn") == ad.lora_count_peft(model, 4, "attention-ffn"), name
    with pytest.raises(InputError, match="no linear layer"):  # XLNet's q, k, v are bare parameters
        ad.lora_matrices(_other_families()["xlnet"], "query-value")


def test_bert_components_match_hand_counts(models):
    model = models["bert-mlm"]
    vocab = model.config.vocab_size
    assert ad.component_counts(model) == {
        "embeddings": (vocab + POSITIONS + 2) * D + 2 * D,  # word, position, type tables + LayerNorm
        "attention": LAYERS * 4 * (D * D + D),  # query, key, value, output
        "feed-forward": LAYERS * (D * FFN + FFN + FFN * D + D),
        "norms": LAYERS * 2 * 2 * D,  # after attention, after the feed-forward block
        "heads": (D * D + D) + 2 * D + vocab,  # MLM transform + LayerNorm + output bias (decoder tied)
        "other": 0,
    }
    assert ad.component_counts(models["bert-bare"])["heads"] == D * D + D  # the pooler


def test_gpt2_counts_its_tied_head_once(models):
    model = models["gpt2"]
    counts = ad.component_counts(model)
    assert counts["heads"] == 0  # lm_head shares wte
    assert counts["embeddings"] == (model.config.vocab_size + POSITIONS) * D
    assert counts["norms"] == (2 * LAYERS + 1) * 2 * D  # ln_1, ln_2 per layer, ln_f


@pytest.mark.parametrize("targets", list(ad.LORA_TARGETS))
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_formula_equals_peft(models, family, targets):
    model = models[family]
    before = {n: p.data_ptr() for n, p in model.named_parameters()}
    assert ad.lora_count(model, 4, targets) == ad.lora_count_peft(model, 4, targets) > 0
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == before  # the loaded model is untouched


def test_lora_counts_by_hand(models):
    r = 8
    assert ad.lora_count(models["bert-mlm"], r) == LAYERS * 2 * r * (D + D)  # query and value
    assert ad.lora_count(models["gpt2"], r) == LAYERS * r * (D + 3 * D)  # fused c_attn: d → 3d
    assert ad.lora_count(models["bert-mlm"], r, "attention-ffn") == LAYERS * r * (4 * 2 * D + 2 * (D + FFN))


def test_houlsby_formula_matches_real_modules():
    d, layers, r = 48, 3, 5
    adapter = torch.nn.ModuleList(
        torch.nn.Sequential(torch.nn.Linear(d, r), torch.nn.GELU(), torch.nn.Linear(r, d)) for _ in range(2 * layers)
    )
    assert ad.houlsby_count(d, layers, r) == sum(p.numel() for p in adapter.parameters())


def test_adapter_sizes_of_the_embedded_encoder():
    from ctxlens.models.registry import get_model

    model = get_model("all-MiniLM-L6-v2", "cpu").model
    sizes = ad.adapter_sizes(model, adapter_r=64, lora_r=8)
    d, layers = 384, 6
    assert (sizes.d, sizes.layers) == (d, layers)
    assert sizes.components["embeddings"] == (30522 + 512 + 2) * d + 2 * d
    assert sum(sizes.components.values()) == sizes.total
    assert sizes.lora == sizes.lora_peft == layers * 2 * 8 * (d + d)
    assert sizes.houlsby == layers * 2 * (2 * d * 64 + 64 + d)
    assert sizes.share(sizes.lora) == pytest.approx(sizes.lora / sizes.total)


def test_bad_sizes_and_targets_are_refused(models):
    with pytest.raises(InputError):
        ad.adapter_sizes(models["bert-mlm"], adapter_r=0)
    with pytest.raises(InputError, match="Unknown LoRA targets"):
        ad.lora_matrices(models["bert-mlm"], "everything")


# --- training ----------------------------------------------------------------------------------

ANIMALS = ["the cat sat on the mat", "a dog sat in the house", "the cat and the dog", "a cat on a mat",
           "the dog sat at the house", "she sat with the cat", "he played with a dog", "the mat in the house"]
MONEY = ["the bank loan", "a deposit of money", "money in the bank", "the loan and the deposit",
         "she went to the bank", "he had money for the loan", "a bank deposit", "the capital of the bank"]
TOY = ad.LabelledSet(
    ("animals", "money"),
    tuple(ad.Example(t, 0) for t in ANIMALS) + tuple(ad.Example(t, 1) for t in MONEY),
    tuple(ad.Example(t, 0) for t in ("a dog on the mat", "the cat in a house", "he sat with a dog"))
    + tuple(ad.Example(t, 1) for t in ("a loan from the bank", "money and a deposit", "she had bank money")),
)
STEPS = 30


@pytest.fixture(scope="module")
def trained(tiny_models):
    steps = []
    run = ad.train_lora_classifier(spec_for(tiny_models["bert-bare"]), TOY, r=4, steps=STEPS, lr=3e-2, seed=0,
                                   max_seconds=600, on_step=lambda *a: steps.append(a))
    return run, steps


def _sha(tensor) -> str:
    return hashlib.sha256(tensor.detach().float().contiguous().numpy().tobytes()).hexdigest()


def test_training_moves_only_the_adapter_and_the_head(trained, tiny_models):
    run, _ = trained
    assert run.frozen_unchanged and run.frozen_before
    assert sorted(run.changed_trainable) == sorted(run.trained_before)  # every LoRA matrix and the head moved
    assert all(".lora_" in n or ".modules_to_save." in n for n in run.trained_before)
    # Independently: the frozen tensors are the checkpoint's, as transformers itself reads them.
    reference = tf.BertForSequenceClassification.from_pretrained(tiny_models["bert-bare"])
    direct = {n: _sha(p) for n, p in reference.named_parameters() if not n.startswith("classifier.")}
    ours = {n.removeprefix("base_model.model.").replace(".base_layer.", "."): v
            for n, v in run.frozen_after.items() if ".original_module." not in n}
    assert ours == direct


def test_training_counts(trained, tiny_models):
    run, _ = trained
    head = D * 2 + 2  # a fresh Linear(d, 2) on the pooled [CLS]
    assert run.lora_params == LAYERS * 2 * 4 * (D + D)
    assert run.n_trainable == run.lora_params + head
    reference = tf.BertForSequenceClassification.from_pretrained(tiny_models["bert-bare"])
    assert run.n_full == sum(p.numel() for p in reference.parameters())


def test_training_lowers_the_loss_and_raises_accuracy(trained):
    run, steps = trained
    assert [s[0] for s in steps] == list(range(1, STEPS + 1)) and run.stopped_by == "steps"
    assert [s[1] for s in steps] == pytest.approx(list(run.losses))
    assert run.losses[-1] < 0.5 * run.losses[0]
    assert run.accuracy_after > run.accuracy_before
    assert run.accuracy_after == pytest.approx(1.0)
    truth = [e.label for e in TOY.test]
    assert run.accuracy_before == pytest.approx(sum(p == t for p, t in zip(run.predicted_before, truth)) / len(truth))


def test_training_is_seeded_and_leaves_the_global_rng(tiny_models):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    runs = [ad.train_lora_classifier(spec_for(tiny_models["bert-bare"]), TOY, r=2, steps=2, seed=7) for _ in range(2)]
    assert torch.equal(torch.rand(3), expected)
    assert runs[0].trained_before == runs[1].trained_before  # the same fresh head and LoRA matrices


def test_training_stops_at_the_time_limit(tiny_models):
    run = ad.train_lora_classifier(spec_for(tiny_models["bert-bare"]), TOY, r=2, steps=50, max_seconds=0.0)
    assert run.stopped_by == "time" and len(run.losses) == 1


def test_the_demo_refuses_a_decoder(tiny_models):
    with pytest.raises(InputError, match="encoder"):
        ad.train_lora_classifier(spec_for(tiny_models["gpt2"]), TOY)


def test_demo_set_is_balanced_and_disjoint():
    data = ad.demo_set()
    raw = json.loads(ad.DEMO_FILE.read_text())
    assert data.labels == ("negative", "positive") and len(data.train) + len(data.test) == 40
    for part in (data.train, data.test):
        assert sum(e.label for e in part) * 2 == len(part)
    assert not {e.text for e in data.train} & {e.text for e in data.test}
    assert len(raw["train"]) == len(data.train)


@pytest.mark.slow
def test_real_minilm_demo_learns_the_classroom_set():
    run = ad.train_lora_classifier(spec_for("all-MiniLM-L6-v2"), steps=30, max_seconds=600)
    assert run.frozen_unchanged and len(run.changed_trainable) == len(run.trained_before)
    assert run.losses[-1] < 0.2 * run.losses[0]
    assert run.accuracy_after >= 0.9 > run.accuracy_before


# --- the tab -------------------------------------------------------------------------------------


def test_app_counts_and_trains():
    at = open_tab("notes_adapters", 300).run()
    ok(at)
    table = at.dataframe[0].value
    assert table["parameters"].iloc[:len(ad.COMPONENTS)].sum() == table.set_index("part").loc["whole model", "parameters"]
    assert any("they agree" in m.value for m in at.markdown)
    assert at.get("plotly_chart")
    at.slider(key="nad_steps").set_value(5)
    at.button(key="nad_train").click().run()
    ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Full fine-tuning would train"] == f"{22713216 + 384 * 2 + 2:,}"
    checks = at.dataframe[1].value
    assert checks["changed"].iloc[0] == "no" and checks["changed"].iloc[1].startswith("yes")
