"""What the Why? views cost against one forward of the same input, side by side in one run.

  integrated gradients, 32 steps, 64 tokens / one forward      target <= 40x on a CPU
  head importance by ablation (every head) / one forward        target <= 12x for MiniLM's 72 heads
  gradient x input, word occlusion, the cross-check: printed without a target.

"One forward" is the model with its head reading the input once (inference mode). MiniLM has
no trained head, so its heatmap runs on MiniLM's encoder with a masked-LM head of random
weights: the cost is the same, the numbers mean nothing. SmolLM2 explains its next token.
"""

from __future__ import annotations

import tempfile

import torch
from common import device_line, ratio_line, text_of_tokens, timed_side_by_side

from ctxlens.methods import ablation, attribution, crosscheck, targets
from ctxlens.models.device import pick_device
from ctxlens.models.loading import load_hf, spec_for
from ctxlens.models.registry import get_model

N_TOKENS = 64
STEPS = 32


def minilm_with_mlm_head(folder: str, device: str):
    """MiniLM's trained encoder under a random masked-LM head (timing only)."""
    import transformers as tf

    minilm = get_model("all-MiniLM-L6-v2", "cpu")
    torch.manual_seed(0)
    model = tf.BertForMaskedLM(minilm.model.config)
    model.bert.load_state_dict(minilm.model.state_dict(), strict=False)
    model.save_pretrained(folder)
    minilm.tokenizer.save_pretrained(folder)
    return load_hf(spec_for(folder), device)


def forward_once(lm, subj):
    with torch.inference_mode():
        return lm.heads(lm.batch_inputs([subj.enc]))


def bench(lm, label: str, mask: str | None, heads_target: str = "-") -> list[str]:
    text = text_of_tokens(lm.tokenizer, N_TOKENS, mask)
    subj = attribution.subject(lm, text)
    target = targets.prediction_target(lm, subj.record)
    layers, heads = lm.model.config.num_hidden_layers, lm.model.config.num_attention_heads
    t = timed_side_by_side({
        "forward": lambda: forward_once(lm, subj),
        "ig": lambda: attribution.integrated_gradients(lm, subj, target, steps=STEPS),
        "gxi": lambda: attribution.gradient_x_input(lm, subj, target),
        "occlusion": lambda: attribution.occlusion(lm, subj, target),
        "heads": lambda: ablation.head_importance(lm, subj, target),
    }, repeats=3, warmup=1)
    n = subj.enc.length
    lines = [
        ratio_line(f"{label} {n} tokens: integrated gradients, {STEPS} steps / one forward", t["ig"], t["forward"],
                   "<= 40x"),
        ratio_line(f"{label} {n} tokens: head importance, {layers * heads} heads / one forward", t["heads"],
                   t["forward"], heads_target),
        ratio_line(f"{label} {n} tokens: gradient x input / one forward", t["gxi"], t["forward"], "-"),
        ratio_line(f"{label} {n} tokens: occlusion, {len(subj.record.words)} words / one forward", t["occlusion"],
                   t["forward"], "-"),
    ]
    check = timed_side_by_side({"forward": lambda: forward_once(lm, subj),
                                "cross-check": lambda: crosscheck.cross_check(lm, subj, target, steps=STEPS)},
                               repeats=1, warmup=0)
    lines.append(ratio_line(f"{label} {n} tokens: the cross-check (all six) / one forward", check["cross-check"],
                            check["forward"], "-"))
    return lines


def main() -> None:
    device = pick_device()
    print(device_line())
    with tempfile.TemporaryDirectory() as folder:
        lm = minilm_with_mlm_head(folder, device)
        for line in bench(lm, "MiniLM (random MLM head)", lm.tokenizer.mask_token, heads_target="<= 12x"):
            print(line, flush=True)
    for line in bench(get_model("SmolLM2-135M-Instruct", device), "SmolLM2", None):
        print(line, flush=True)


if __name__ == "__main__":
    main()
