"""Course notes, "Adapters and partial fine-tuning": what each part of a model costs, what a
Houlsby bottleneck adapter or LoRA adds, and a live LoRA fine-tune of a sentence classifier on
a frozen encoder (its loss drawn as it trains, accuracy before and after, checksums showing the
frozen weights never moved).

The counts are cached in the library's one cache (by model, device, precision and sizes); a
training run is this session's own (it ran on its click), kept in the session for the inputs
it was made for.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ctxlens.cache import cached
from ctxlens.figures.basic import safe_label
from ctxlens.figures.adapters import loss_figure, parameters_figure
from ctxlens.methods import adapters as ad
from ctxlens.models.loading import spec_for

from . import chrome, running
from .pickers import pick_model, precision
from .state import BIND

P = "nad"  # widget key prefix
RUN_KEY = f"_{P}_run"  # (inputs, LoraRun) of this session's last training


def render(device: str) -> None:
    st.markdown(
        "Fine-tuning every weight of a model for every task means a full copy per task. **Partial "
        "fine-tuning** freezes the pre-trained weights and trains a few new ones: a **bottleneck "
        "adapter** (Houlsby et al. 2019) inserts a small down-projection d→r, a nonlinearity and an "
        "up-projection r→d after the attention and after the feed-forward block of every layer; "
        "**LoRA** (Hu et al. 2021) adds a low-rank update B·A (rank r) beside chosen weight matrices, "
        "so a d_in×d_out matrix gains r·(d_in + d_out) parameters. Both train well under 1 % of a model."
    )
    key = pick_model(f"{P}_model", "Model to count", device)
    lm = running.load_model(key, device)
    if lm is None:
        return
    if not hasattr(lm, "model"):
        st.info("Counting parameters needs the model in this process; with a classroom server the weights "
                "live on the server.")
        return
    try:
        sizes = counts_section(lm, key, device)
    except Exception as exc:  # noqa: BLE001 - any model peft or the counts cannot read: a message, not a traceback
        chrome.show_error(exc)
        return
    st.divider()
    demo_section(sizes, device)


def counts_section(lm, key: str, device: str) -> ad.AdapterSizes:
    c_adapter, c_rank, c_targets = st.columns(3)
    adapter_r = int(c_adapter.number_input("Adapter bottleneck size r", 1, 4096, 64, key=f"{P}_adapter_r",
                                           bind=BIND, help="Houlsby et al. used r between 8 and 256."))
    lora_r = int(c_rank.number_input("LoRA rank r", 1, 1024, 8, key=f"{P}_lora_r", bind=BIND,
                                     help="Hu et al. found ranks 1 to 8 enough for GPT-3."))
    targets = c_targets.selectbox("LoRA on", list(ad.LORA_TARGETS), key=f"{P}_targets", bind=BIND,
                                  format_func=ad.LORA_TARGETS.get)
    sizes = cached(("adapter-sizes", key, device, precision(), adapter_r, lora_r, targets),
                   lambda: ad.adapter_sizes(lm.model, adapter_r, lora_r, targets))
    table = pd.DataFrame(
        [{"part": name, "parameters": n, "share of the model": f"{sizes.share(n):.2%}"}
         for name, n in sizes.components.items()]
        + [{"part": "whole model", "parameters": sizes.total, "share of the model": "100.00%"},
           {"part": f"+ Houlsby adapter (r = {adapter_r})", "parameters": sizes.houlsby,
            "share of the model": f"{sizes.share(sizes.houlsby):.2%}"},
           {"part": f"+ LoRA (r = {lora_r}, {targets})", "parameters": sizes.lora,
            "share of the model": f"{sizes.share(sizes.lora):.2%}"}])
    # Side by side, or one under the other on a projector: its large text does not fit half a page.
    left, right = (st.container(), st.container()) if chrome.projector_on() else st.columns([2, 3])
    left.dataframe(table, hide_index=True, width="stretch")
    components = {k: v for k, v in sizes.components.items() if v > 0}
    additions = {f"Houlsby adapter r={adapter_r}": sizes.houlsby, f"LoRA r={lora_r}": sizes.lora}
    chrome.chart(right, lambda: parameters_figure(components, additions, sizes.total),
                 key=f"{P}_counts", shared=("adapter-counts", key, device, precision(), adapter_r, lora_r, targets),
                 width="stretch")
    explain_counts(sizes)
    return sizes


def explain_counts(sizes: ad.AdapterSizes) -> None:
    d, layers, r = sizes.d, sizes.layers, sizes.adapter_r
    shapes = sorted({(m.d_in, m.d_out) for m in sizes.lora_matrices})
    per = ", ".join(f"{sum((m.d_in, m.d_out) == s for m in sizes.lora_matrices)} × {s[0]}→{s[1]}" for s in shapes)
    agree = "agree" if sizes.lora == sizes.lora_peft else "DISAGREE"
    st.markdown(
        f"- **Houlsby adapter**: {layers} layers × 2 adapters × (d·r + r + r·d + d) with d = {d}, r = {r}: "
        f"**{sizes.houlsby:,}** parameters ({sizes.share(sizes.houlsby):.2%} of the model). The original also "
        f"trains the layer norms ({sizes.components['norms']:,} here).\n"
        f"- **LoRA** on {len(sizes.lora_matrices)} matrices ({per}): Σ r·(d_in + d_out) = **{sizes.lora:,}** "
        f"by the formula; peft's `get_peft_model` makes **{sizes.lora_peft:,}** trainable: they {agree}."
    )
    fused = sorted({m.name.rsplit(".", 1)[-1] for m in sizes.lora_matrices} & ad.FUSED_QKV)
    notes = ["peft 0.21 has no Houlsby bottleneck adapter (its IA3 rescales activations and its "
             "\"adaption prompt\" is LLaMA-Adapter's), so the adapter is counted by its formula."]
    if fused and sizes.lora_targets == "query-value":
        notes.append(f"This model computes query, key and value in one matrix ({', '.join(fused)}): "
                     "LoRA on it adapts all three.")
    st.caption(" ".join(notes))


def demo_section(sizes: ad.AdapterSizes, device: str) -> None:
    data = ad.demo_set()
    st.subheader("Live: LoRA fine-tuning of a sentence classifier")
    st.markdown(
        f"The encoder reads {len(data.train)} short classroom sentences labelled "
        f"{' / '.join(data.labels)}; a **fresh classification head** on [CLS] and **LoRA matrices** "
        f"(rank {sizes.lora_r}, on {ad.LORA_TARGETS[sizes.lora_targets]}) are trained, every other weight "
        f"frozen. Accuracy is measured on {len(data.test)} held-out sentences before and after."
    )
    c_model, c_steps, c_seed = st.columns([3, 2, 1])
    with c_model:
        key = pick_model(f"{P}_demo_model", "Encoder to fine-tune", device, encoders_only=True)
    steps = int(c_steps.slider("Training steps", 5, 100, 20, 5, key=f"{P}_steps", bind=BIND,
                               help="Each step reads the whole training set once; training also stops "
                                    "after about 45 seconds."))
    seed = int(c_seed.number_input("Seed", 0, 2**31 - 1, 0, key=f"{P}_seed", bind=BIND))
    inputs = (key, device, sizes.lora_r, sizes.lora_targets, steps, seed)
    if st.button("Train", key=f"{P}_train", type="primary", icon=":material/model_training:"):
        if running.load_model(key, device) is not None:  # fetches (and says so) if needed
            run = train_live(key, device, sizes.lora_r, sizes.lora_targets, steps, seed)
            if run is not None:
                st.session_state[RUN_KEY] = (inputs, run)
    done = st.session_state.get(RUN_KEY)
    if done is None:
        st.caption("Press **Train**: on a CPU this takes seconds to a minute (a fresh copy of the encoder is "
                   "loaded with a new head, so the shared model is never touched).")
        return
    if done[0] != inputs:
        st.info("The result below was trained with other settings; press **Train** to train with these.")
    show_run(done[1], data)


def train_live(key: str, device: str, r: int, targets: str, steps: int, seed: int) -> ad.LoraRun | None:
    """Train, drawing the loss after each step; None (and the reason shown) on failure."""
    bar, slot = st.progress(0.0, text="Training…"), st.empty()
    losses: list[float] = []

    def on_step(step: int, loss: float, seconds: float) -> None:
        losses.append(loss)
        bar.progress(step / steps, text=f"Step {step}/{steps}: loss {loss:.4f} ({seconds:.1f} s)")
        slot.plotly_chart(loss_figure(losses, steps), key=f"{P}_live_{step}", width="stretch")

    try:
        return ad.train_lora_classifier(spec_for(key), r=r, targets=targets, steps=steps, seed=seed, device=device,
                                        on_step=on_step)
    except Exception as exc:  # noqa: BLE001 - a failed run is a message in the tab, never a traceback
        chrome.show_error(exc)
        return None
    finally:
        bar.empty()
        slot.empty()


def show_run(run: ad.LoraRun, data: ad.LabelledSet) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Held-out accuracy before", f"{run.accuracy_before:.0%}")
    c2.metric("… after", f"{run.accuracy_after:.0%}", f"{run.accuracy_after - run.accuracy_before:+.0%}")
    c3.metric("Trained parameters (LoRA + head)", f"{run.n_trainable:,}", f"{run.n_trainable / run.n_full:.2%} of all",
              delta_color="off", delta_arrow="off")
    c4.metric("Full fine-tuning would train", f"{run.n_full:,}")
    stop = "" if run.stopped_by == "steps" else " (stopped by the time limit)"
    title = f"Training loss, {safe_label(run.model_key)}: {len(run.losses)} steps in {run.seconds:.1f} s{stop}"
    chrome.chart(st, loss_figure(run.losses, title=title), key=f"{P}_loss", width="stretch")
    st.markdown(
        f"Of the {run.n_trainable:,} trained parameters, {run.lora_params:,} are LoRA's matrices and "
        f"{run.n_trainable - run.lora_params:,} the new head. Training loss: {run.losses[0]:.3f} → {run.losses[-1]:.3f}."
    )
    checksum_table(run)
    with st.expander("Held-out sentences: predictions before and after"):
        st.dataframe(pd.DataFrame({
            "sentence": [e.text for e in data.test], "label": [run.labels[e.label] for e in data.test],
            "before": [run.labels[p] for p in run.predicted_before],
            "after": [run.labels[p] for p in run.predicted_after],
        }), hide_index=True, width="stretch")


def checksum_table(run: ad.LoraRun) -> None:
    """SHA-256 of the weights before and after training: the frozen ones are bit for bit the same."""
    n_changed = len(run.changed_trainable)
    summary = pd.DataFrame([
        {"weights": f"frozen base weights ({len(run.frozen_before)} tensors)",
         "SHA-256 before": ad.digest(run.frozen_before)[:16], "SHA-256 after": ad.digest(run.frozen_after)[:16],
         "changed": "no" if run.frozen_unchanged else "YES"},
        {"weights": f"LoRA matrices + head ({len(run.trained_before)} tensors)",
         "SHA-256 before": ad.digest(run.trained_before)[:16], "SHA-256 after": ad.digest(run.trained_after)[:16],
         "changed": f"yes ({n_changed} of {len(run.trained_before)} tensors)"},
    ])
    st.dataframe(summary, hide_index=True, width="stretch")
    st.caption("Each digest is a SHA-256 over the SHA-256 of every tensor (first 16 hex digits shown).")
    with st.expander("Every tensor's checksum"):
        after = run.frozen_after | run.trained_after
        rows = [{"tensor": name, "trained": name in run.trained_before, "before": before[:16],
                 "after": after[name][:16], "same": before == after[name]}
                for name, before in (run.frozen_before | run.trained_before).items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
