"""Adapters and partial fine-tuning: what each part of a model costs, what a bottleneck adapter
or LoRA adds, and a live LoRA fine-tune of a sentence classifier on a frozen encoder.

Counts read a loaded model's own parameters (tied weights once). LoRA's size is counted twice:
by the formula r·(d_in + d_out) per adapted matrix, and by wrapping a weightless copy of the
model (the meta device) with peft and counting what it made trainable. peft 0.21 has no
Houlsby bottleneck adapter (its IA3 scales activations, its "adaption prompt" is
LLaMA-Adapter's prompt), so the bottleneck adapter is counted by its formula only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..models import catalog as cat
from ..models.catalog import ModelSpec
from ..record import Family

COMPONENTS = ("embeddings", "attention", "feed-forward", "norms", "heads", "other")
# Module names (path segments) across BERT, DistilBERT, RoBERTa, ALBERT, ELECTRA, GPT-2, Llama,
# XLNet and T5.
_HEAD_PARTS = frozenset({
    "cls", "lm_head", "classifier", "pre_classifier", "qa_outputs", "pooler", "score", "seq_relationship",
    "vocab_transform", "vocab_layer_norm", "vocab_projector", "sop_classifier", "lm_loss", "sequence_summary",
    "logits_proj",
})
_EMBEDDING_PARTS = frozenset({"wte", "wpe"})
_FFN_PARTS = frozenset({"intermediate", "mlp", "ffn", "ff", "feed_forward", "feedforward", "fc1", "fc2",
                        "densereludense"})
# LoRA's classic choice (Hu et al. 2021): the query and value projections. GPT-2's c_attn computes
# query, key and value in one matrix, so adapting it adapts all three.
_QUERY_VALUE = frozenset({"query", "value", "q_lin", "v_lin", "q_proj", "v_proj", "q", "v", "c_attn",
                          "query_key_value"})
FUSED_QKV = frozenset({"c_attn", "query_key_value"})
LORA_TARGETS = {
    "query-value": "the query and value projections",
    "attention": "all attention matrices (query, key, value, output)",
    "attention-ffn": "all attention and feed-forward matrices",
}
DEMO_FILE = Path(__file__).resolve().parent.parent / "data" / "adapter_demo.json"


# --- counting -------------------------------------------------------------------------------


def component_of(path: str, module: torch.nn.Module, param_name: str = "") -> str:
    """The component a parameter `param_name` of `module` (at `path`) belongs to.

    Order matters: a head's own LayerNorm is the head's, and the embedding LayerNorm counts
    with the embeddings (BERT's embedding block is tables + LayerNorm)."""
    parts = [p for p in path.lower().split(".") if p]
    own = param_name.lower()
    if _HEAD_PARTS & set(parts) or any(p.endswith(("predictions", "lm_head")) for p in parts):
        return "heads"
    if (isinstance(module, torch.nn.Embedding) or _EMBEDDING_PARTS & set(parts)
            or any("embed" in p for p in [*parts, own]) or own.endswith("_emb")):
        return "embeddings"
    if "norm" in type(module).__name__.lower() or (parts and ("norm" in parts[-1] or parts[-1].startswith("ln"))):
        return "norms"
    if any("attn" in p or "attention" in p for p in parts):
        return "attention"
    # BERT's feed-forward output is `layer.N.output` (its attention's is `attention.output`).
    if (_FFN_PARTS & set(parts) or any(p.startswith("ffn") for p in parts)
            or any(p == "output" and q.isdigit() for q, p in zip(parts, parts[1:]))):
        return "feed-forward"
    return "other"


def _owned_parameters(model: torch.nn.Module):
    """(module path, module, parameter name, parameter) for every parameter once: a tied weight
    (an LM head sharing the word embeddings) is counted where it first appears."""
    seen = set()
    for path, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                yield path, module, name, param


def parameter_count(model: torch.nn.Module) -> int:
    """Every parameter once (tied weights once), as torch's `model.parameters()` gives them."""
    return sum(p.numel() for p in model.parameters())


def component_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per component (`COMPONENTS`, in that order); they sum to `parameter_count`."""
    counts = dict.fromkeys(COMPONENTS, 0)
    for path, module, name, param in _owned_parameters(model):
        counts[component_of(path, module, name)] += param.numel()
    return counts


def model_dims(model: torch.nn.Module) -> tuple[int, int]:
    """(hidden size d, number of layers) from the model's config."""
    config = model.config
    d = next((getattr(config, k) for k in ("hidden_size", "n_embd", "dim", "d_model") if getattr(config, k, None)), None)
    layers = next((getattr(config, k) for k in ("num_hidden_layers", "n_layer", "n_layers") if getattr(config, k, None)),
                  None)
    if not d or not layers:
        raise InputError(f"The config of {type(model).__name__} names no hidden size or layer count.")
    return int(d), int(layers)


def houlsby_count(d: int, layers: int, r: int) -> int:
    """A Houlsby bottleneck adapter (2019): in every layer, one after attention and one after the
    feed-forward block, each down d→r and up r→d with biases (a nonlinearity between has no
    parameters): layers · 2 · (d·r + r + r·d + d)."""
    return layers * 2 * (2 * d * r + r + d)


# --- LoRA -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraMatrix:
    name: str  # the module's path in the model
    d_in: int
    d_out: int

    def params(self, r: int) -> int:
        """A (d_in → r) plus B (r → d_out), no biases."""
        return r * (self.d_in + self.d_out)


def _matrix_dims(module: torch.nn.Module) -> tuple[int, int] | None:
    """(d_in, d_out) of a linear layer: torch's Linear, or GPT-2's Conv1D (weight stored [in, out])."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    return None


def lora_matrices(model: torch.nn.Module, targets: str = "query-value") -> list[LoraMatrix]:
    """The matrices LoRA adapts for `targets` (a key of `LORA_TARGETS`), in module order."""
    if targets not in LORA_TARGETS:
        raise InputError(f"Unknown LoRA targets {targets!r}; choose one of {', '.join(LORA_TARGETS)}.")
    kept = {"attention"} | ({"feed-forward"} if targets == "attention-ffn" else set())
    found = []
    for name, module in model.named_modules():
        dims = _matrix_dims(module)
        if dims is None or component_of(name, module) not in kept:
            continue
        if targets == "query-value" and name.rsplit(".", 1)[-1] not in _QUERY_VALUE:
            continue
        found.append(LoraMatrix(name, *dims))
    if not found:
        raise InputError(f"LoRA finds no linear layer in {type(model).__name__} for {LORA_TARGETS[targets]}; "
                         "pick another choice.")
    return found


def lora_count(model: torch.nn.Module, r: int, targets: str = "query-value") -> int:
    """LoRA's added parameters by the formula: r·(d_in + d_out) per adapted matrix."""
    return sum(m.params(r) for m in lora_matrices(model, targets))


def _lora_config(model: torch.nn.Module, r: int, targets: str, **extra):
    import peft

    matrices = lora_matrices(model, targets)
    conv1d = any(type(model.get_submodule(m.name)).__name__ == "Conv1D" for m in matrices)
    return peft.LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=[m.name for m in matrices],
                           fan_in_fan_out=conv1d, **extra)


def lora_count_peft(model: torch.nn.Module, r: int, targets: str = "query-value") -> int:
    """LoRA's added parameters as peft makes them: a weightless copy of `model` (meta device,
    so the shared loaded model is never touched) wrapped by `get_peft_model`, its trainable count."""
    import peft

    config = _lora_config(model, r, targets)
    with torch.device("meta"):
        clone = type(model)(copy.deepcopy(model.config))
    with warnings.catch_warnings():  # peft asks transformers a deprecated question
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = peft.get_peft_model(clone, config)
    trainable, _ = wrapped.get_nb_trainable_parameters()
    return int(trainable)


@dataclass(frozen=True)
class AdapterSizes:
    total: int  # the model's parameters (tied weights once)
    components: dict[str, int]  # per component, summing to total
    d: int
    layers: int
    adapter_r: int
    houlsby: int  # a Houlsby bottleneck adapter of size adapter_r
    lora_r: int
    lora_targets: str
    lora_matrices: tuple[LoraMatrix, ...]
    lora: int  # LoRA by the formula
    lora_peft: int  # LoRA as peft makes it

    def share(self, n: int) -> float:
        return n / self.total if self.total else float("nan")


def adapter_sizes(model: torch.nn.Module, adapter_r: int = 64, lora_r: int = 8,
                  targets: str = "query-value") -> AdapterSizes:
    """Everything the counts table shows for one loaded model."""
    if adapter_r < 1 or lora_r < 1:
        raise InputError("Adapter and LoRA sizes must be at least 1.")
    d, layers = model_dims(model)
    matrices = tuple(lora_matrices(model, targets))
    return AdapterSizes(
        total=parameter_count(model), components=component_counts(model), d=d, layers=layers,
        adapter_r=adapter_r, houlsby=houlsby_count(d, layers, adapter_r), lora_r=lora_r, lora_targets=targets,
        lora_matrices=matrices, lora=sum(m.params(lora_r) for m in matrices),
        lora_peft=lora_count_peft(model, lora_r, targets),
    )


# --- the live demo: LoRA + a fresh classifier head on a frozen encoder ------------------------


@dataclass(frozen=True)
class Example:
    text: str
    label: int


@dataclass(frozen=True)
class LabelledSet:
    labels: tuple[str, ...]
    train: tuple[Example, ...]
    test: tuple[Example, ...]


def demo_set(path: Path = DEMO_FILE) -> LabelledSet:
    """The tiny labelled set of the demo (classroom sentences, negative / positive)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))

    def examples(rows):
        return tuple(Example(r["text"], int(r["label"])) for r in rows)

    return LabelledSet(tuple(raw["labels"]), examples(raw["train"]), examples(raw["test"]))


def checksum(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (float32, on the CPU)."""
    return hashlib.sha256(tensor.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def digest(checksums: dict[str, str]) -> str:
    """One SHA-256 over many tensors' checksums, by name: equal digests, equal tensors."""
    return hashlib.sha256("\n".join(f"{k} {v}" for k, v in sorted(checksums.items())).encode()).hexdigest()


@dataclass(frozen=True)
class LoraRun:
    model_key: str
    labels: tuple[str, ...]
    losses: tuple[float, ...]  # the training loss at each step, before its update (the whole training set)
    accuracy_before: float  # on the held-out examples
    accuracy_after: float
    predicted_before: tuple[int, ...]  # per held-out example
    predicted_after: tuple[int, ...]
    frozen_before: dict[str, str]  # SHA-256 per frozen tensor
    frozen_after: dict[str, str]
    trained_before: dict[str, str]  # SHA-256 per trainable tensor (LoRA matrices, the head)
    trained_after: dict[str, str]
    n_trainable: int  # what LoRA trains: its matrices and the fresh head (peft's count)
    n_full: int  # what full fine-tuning trains: every parameter of the classifier
    lora_params: int  # of n_trainable, LoRA's matrices (by the formula)
    seconds: float
    stopped_by: str  # "steps" or "time"

    @property
    def frozen_unchanged(self) -> bool:
        return self.frozen_before == self.frozen_after

    @property
    def changed_trainable(self) -> list[str]:
        return [k for k, v in self.trained_after.items() if self.trained_before.get(k) != v]


StepCallback = Callable[[int, float, float], None]  # step (1-based), loss, seconds so far


def _fresh_classifier(spec: ModelSpec, n_labels: int, device: str):
    """(classifier, tokenizer, names of the freshly initialised head modules): the encoder's
    weights from its checkpoint and a new sentence-classification head (read through the
    backend, the only code that imports transformers)."""
    from ..backends import hf_loading
    from ..models.loading import fetch

    if spec.family is not Family.MASKED_LM:
        raise InputError(f"The demo trains a [CLS] classifier on a BERT-style encoder; {spec.key} is a "
                         f"{spec.family.label}. Pick an encoder such as all-MiniLM-L6-v2.")
    as_classifier = cat.with_capabilities(spec, {cat.ATTENTIONS, cat.SEQ_CLASS})
    model, tokenizer, info = hf_loading.read_weights(as_classifier, fetch(spec), torch.float32)
    fresh = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())})
    if not fresh:
        raise InputError(f"{spec.key} already has a trained classification head; the demo starts from a "
                         "fresh one. Pick a pre-trained encoder.")
    if model.config.num_labels != n_labels:
        raise InputError(f"{spec.key}'s config asks for {model.config.num_labels} labels; the demo has {n_labels}.")
    return model.to(device), tokenizer, fresh


def _batch(tokenizer, texts, device: str) -> dict:
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items() if k in tokenizer.model_input_names}


def _predict(model, batch: dict) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return model(**batch).logits.argmax(-1).cpu().numpy()


def _checksums(model) -> tuple[dict[str, str], dict[str, str]]:
    """(frozen, trainable): SHA-256 per tensor, by name."""
    frozen, trainable = {}, {}
    for name, param in model.named_parameters():
        (trainable if param.requires_grad else frozen)[name] = checksum(param)
    return frozen, trainable


def train_lora_classifier(spec: ModelSpec, data: LabelledSet | None = None, r: int = 8,
                          targets: str = "query-value", steps: int = 40, lr: float = 3e-3,
                          max_seconds: float = 45.0, seed: int = 0, device: str = "cpu",
                          on_step: StepCallback | None = None) -> LoraRun:
    """Fine-tune LoRA matrices (rank r, on `targets`) and a fresh classifier head on `data.train`
    while every other weight stays frozen; accuracy on `data.test` before and after, and the
    SHA-256 of every tensor before and after. Full-batch AdamW, at most `steps` steps and about
    `max_seconds` seconds; `on_step(step, loss, seconds)` after each step. Seeded: the head,
    LoRA's initial A matrices and dropout draw from `seed`."""
    import peft

    data = data or demo_set()
    if steps < 1 or r < 1:
        raise InputError("Training needs at least one step and a LoRA rank of at least 1.")
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        model, tokenizer, fresh = _fresh_classifier(spec, len(data.labels), device)
        n_full = parameter_count(model)
        lora_params = lora_count(model, r, targets)
        config = _lora_config(model, r, targets, modules_to_save=fresh)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = peft.get_peft_model(model, config)
        frozen_before, trained_before = _checksums(model)
        train_x, test_x = _batch(tokenizer, [e.text for e in data.train], device), _batch(
            tokenizer, [e.text for e in data.test], device)
        train_y = torch.tensor([e.label for e in data.train], device=device)
        test_y = np.array([e.label for e in data.test])
        before = _predict(model, test_x)
        losses, stopped_by, start = _train(model, train_x, train_y, steps, lr, max_seconds, on_step)
        after = _predict(model, test_x)
        frozen_after, trained_after = _checksums(model)
    return LoraRun(
        model_key=spec.key, labels=data.labels, losses=tuple(losses),
        accuracy_before=float((before == test_y).mean()), accuracy_after=float((after == test_y).mean()),
        predicted_before=tuple(map(int, before)), predicted_after=tuple(map(int, after)),
        frozen_before=frozen_before, frozen_after=frozen_after,
        trained_before=trained_before, trained_after=trained_after,
        n_trainable=int(model.get_nb_trainable_parameters()[0]), n_full=n_full, lora_params=lora_params,
        seconds=time.perf_counter() - start, stopped_by=stopped_by,
    )


def _train(model, x: dict, y: torch.Tensor, steps: int, lr: float, max_seconds: float,
           on_step: StepCallback | None) -> tuple[list[float], str, float]:
    """Full-batch AdamW on the trainable parameters; (losses, what stopped it, start time)."""
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses, start = [], time.perf_counter()
    model.train()  # dropout on, as in real fine-tuning
    for step in range(1, steps + 1):
        loss = model(**x, labels=y).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        elapsed = time.perf_counter() - start
        if on_step is not None:
            on_step(step, losses[-1], elapsed)
        if elapsed > max_seconds and step < steps:
            return losses, "time", start
    return losses, "steps", start
