"""A page's first view vs a bare forward, and vs the way a user would script it with transformers.

"Full" is what a page now costs before it draws anything: `analyze(lm, text)` (one forward
keeping every hidden state and attention on the device) plus reading the head's output
(`record.head`: top-k at every position, logits at the mask / last position, moved to the CPU).
Prints, per model and input length (16 / 64 / 256 / 512 tokens), two ratios:
  full / bare forward                     target <= 1.15x on a CPU, <= 1.3x on a GPU
  full / pipeline + 2 forwards            target <= 0.5x
On a GPU the bare forward is a few milliseconds, so the fixed cost of building a record
(tokenising with offsets, word alignment, the head's top-k) weighs more: hence its own target.
The pipeline way, as a user without ctxlens would write it: the model's transformers
pipeline (fill-mask when it has an MLM head; feature-extraction for an encoder without one,
such as MiniLM) plus one forward for attentions and one for hidden states.
"""

from __future__ import annotations

import tempfile

import torch
from common import device_line, on_gpu, ratio_line, text_of_tokens, timed_side_by_side

from ctxlens.models import catalog as cat
from ctxlens.models.device import pick_device
from ctxlens.backends.hf import analyze
from ctxlens.models.loading import load_hf, spec_for
from ctxlens.models.registry import get_model

LENGTHS = (16, 64, 256, 512)


def random_bert_base(folder: str) -> str:
    """A randomly initialised BERT-base-sized masked LM with MiniLM's (bert-base) vocabulary."""
    import transformers as tf

    minilm = get_model("all-MiniLM-L6-v2", "cpu")
    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=minilm.tokenizer.vocab_size)  # 12 x 768, 12 heads
    tf.BertForMaskedLM(config).save_pretrained(folder)
    minilm.tokenizer.save_pretrained(folder)
    return folder


def first_view(lm, text: str):
    """What a page pays before drawing: the analysis and the head's small results."""
    record = analyze(lm, text)
    record.head  # noqa: B018 (top-k and the mask's / last token's logits cross to the CPU)
    return record


def bare_forward(lm, text: str):
    enc = lm.tokenizer(text, return_tensors="pt").to(lm.device)
    with torch.inference_mode():
        return lm.model(**enc)


def pipeline_way(lm, pipe, text: str):
    pipe(text)
    enc = lm.tokenizer(text, return_tensors="pt").to(lm.device)
    with torch.inference_mode():
        lm.model(**enc, output_attentions=True)
        lm.model(**enc, output_hidden_states=True)


def bench(lm, label: str) -> list[str]:
    from transformers import pipeline

    has_mlm = lm.spec.can(cat.MLM)
    task = "fill-mask" if has_mlm else "feature-extraction"
    options = {"top_k": 5} if has_mlm else {}
    pipe = pipeline(task, model=lm.model, tokenizer=lm.tokenizer, device=lm.model.device, **options)
    lines = []
    full_target = "<= 1.3x" if on_gpu() else "<= 1.15x"
    for n in LENGTHS:
        text = text_of_tokens(lm.tokenizer, n, lm.tokenizer.mask_token if has_mlm else None)
        t = timed_side_by_side(
            {
                "full": lambda: first_view(lm, text),
                "bare": lambda: bare_forward(lm, text),
                "scripted": lambda: pipeline_way(lm, pipe, text),
            }
        )
        full, bare, scripted = t["full"], t["bare"], t["scripted"]
        lines.append(ratio_line(f"{label} {n} tokens: full / bare forward", full, bare, full_target))
        lines.append(ratio_line(f"{label} {n} tokens: full / {task} + 2 forwards", full, scripted, "<= 0.5x"))
    return lines


def main() -> None:
    device = pick_device()
    print(device_line())
    for line in bench(get_model("all-MiniLM-L6-v2", device), "MiniLM"):
        print(line, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        lm = load_hf(spec_for(random_bert_base(folder)), device)
        for line in bench(lm, "BERT-base (random)"):
            print(line, flush=True)


if __name__ == "__main__":
    main()
