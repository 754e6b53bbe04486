"""A 100,000-character paste into every page, with both embedded defaults, under AppTest.

The paste is English prose in paragraphs (one per line, as text copied from a document),
with some emoji and CJK; every paragraph has "bank" in it, so the Polysemy lab (whose target
word is "bank") uses them. Per page: the time of the run after the paste is entered, beside
the time after an input of at most 512 tokens (the paste's first words, at most 512 tokens
for both tokenizers, so nothing is cut), whether the page raised, and the first st.warning
messages it showed, printed as "yellow box" (the message about the cut, where the page cuts).
Target: the paste's run <= 3x the 512-token run, no exception. Each input goes into a fresh
session (models already loaded in the process) after the page's default view; every line of
a page's texts starts with a tag of its own, so no page finds the analyses of an earlier one
in the process-wide cache.

With the defaults the Masked LM page stops at "MiniLM has no MLM head" and the QA page at "no
QA model on this machine"; so both also run with models of real shape and random weights: a
BERT-base with an MLM head (its texts carry a [MASK] in every line) and a DistilBERT-base
with a QA head.

Pages that read sentence lists (Polysemy lab, Contextuality, ELMo) take each line as a
sentence and cap how many they read (300, the "Number of sentences" box, 12), and then the
tokens one request reads in all (CTXLENS_REQUEST_TOKENS); the QA page caps its windows by the
same budget. The Contextuality page computes on "Run": both of its runs are timed from the
click, the text entered beforehand.

    python bench/paste_bench.py [PAGE ...]   (only the pages whose file name contains PAGE)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, device_line, finish_gpu_work

from ctxlens.models.catalog import CATALOG, DEFAULT_KEYS
from ctxlens.models.registry import get_model

N_CHARS = 100_000
TARGET = 3.0
# page, the key of its main text box
PAGES = [
    ("Home.py", "w_text"),
    ("pages/1_Attention.py", "w_text"),
    ("pages/2_Polysemy_lab.py", "lab_text"),
    ("pages/3_Contextuality.py", "cx_text"),
    ("pages/4_Masked_LM.py", "mlm_text"),
    ("pages/5_ELMo.py", "elmo_text"),
    ("pages/6_Next_token.py", "nt_text"),
    ("pages/7_Question_answering.py", "qa_context"),
]
SENTENCES = [
    "She walked along the bank of the river after the storm and watched the brown water rise.",
    "The bank in the old town lent money to the farmers, at a rate nobody liked. 💰",
    "北京的银行在河边。",
    "Children played by the water 🌊 while their parents argued about loans, interest and the weather.",
    "He sat on the grassy bank, opened his notebook and wrote: «the current is faster today».",
    "The clerk at the bank counted the notes twice, then a third time, before she signed. ✍️",
    "東京の川の土手で、子どもたちが遊んでいた。",
    "Nobody expected the bank to close its doors on a Tuesday, least of all the manager himself.",
]


def paste(n_chars: int = N_CHARS) -> str:
    """Paragraphs of 4 to 7 sentences, one per line, until n_chars characters."""
    lines, i = [], 0
    while sum(len(line) + 1 for line in lines) < n_chars:
        size = 4 + i % 4
        lines.append(f"Paragraph {i + 1}. " + " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(size)))
        i += 1
    return "\n".join(lines)[:n_chars]


def prefix_of_tokens(text: str, n_tokens: int, tokenizers) -> str:
    """The longest word prefix of `text` (line breaks kept) with at most n_tokens tokens for every
    tokenizer."""
    cuts = [i for i, ch in enumerate(text) if ch in " \n"]
    fits = lambda end: all(len(t(text[:end])["input_ids"]) <= n_tokens for t in tokenizers)  # noqa: E731
    lo, hi = 0, len(cuts) - 1
    while lo < hi:  # the last cut that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(cuts[mid]) else (lo, mid - 1)
    return text[: cuts[lo]]


def enter(at, page: str, box: str, text: str) -> float:
    """Seconds of the run that follows entering `text` (from the click, for Contextuality)."""
    if page.endswith("3_Contextuality.py"):
        at.radio(key="cx_source").set_value("My own sentences").run()
        at.text_area(key=box).set_value(text).run()  # the page waits for "Run"
        at.button(key="cx_run").click()
    else:
        at.text_area(key=box).set_value(text)
    finish_gpu_work()
    start = time.perf_counter()
    at.run()
    finish_gpu_work()
    return time.perf_counter() - start


def messages(at) -> dict[str, list[str]]:
    return {kind: [m.value for m in getattr(at, kind)] for kind in ("warning", "error", "info")}


def one_input(page: str, box: str, models: list[str], text: str) -> dict:
    """A fresh session (the models already loaded in this process): its default view first,
    then `text` typed or pasted into the page's box."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "Home.py"), default_timeout=900)
    at.session_state["ctx_models"] = list(models)
    at.session_state["ctx_extra_models"] = [m for m in models if m not in CATALOG]
    if page != "Home.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, (page, at.exception)
    seconds = enter(at, page, box, text)
    out = {"seconds": seconds, "exception": [str(e.value) for e in at.exception], **messages(at)}
    if page.endswith("3_Contextuality.py") and not at.exception:
        out["n"] = at.number_input(key="cx_n").value
    return out


def tagged(text: str, tag: str) -> str:
    """Every line starts with `tag`: each page gets texts no earlier page analysed (the
    analysis cache is one per process)."""
    return "\n".join(f"{tag} {line}" for line in text.split("\n"))


def first(items: list[str], width: int = 150) -> str:
    if not items:
        return "-"
    text = " ".join(items[0].split())
    return text if len(text) <= width else text[: width - 1] + "…"


def random_models(folder: Path) -> dict[str, str]:
    """Real shapes, random weights, where no checkpoint is on this machine: a BERT-base with
    an MLM head (MiniLM has none) and a DistilBERT-base with a QA head."""
    import torch
    import transformers as tf

    from forward_bench import random_bert_base

    tokenizer = get_model("all-MiniLM-L6-v2").tokenizer
    qa = folder / "distilbert-base-qa-random"
    torch.manual_seed(0)
    tf.DistilBertForQuestionAnswering(tf.DistilBertConfig(vocab_size=tokenizer.vocab_size)).save_pretrained(qa)
    tokenizer.save_pretrained(qa)
    return {"mlm": random_bert_base(str(folder / "bert-base-mlm-random")), "qa": str(qa)}


def main() -> None:
    sys.path.insert(0, str(ROOT / "app"))  # the pages import app/widgets.py
    print(device_line())
    source = paste(N_CHARS + 20_000)
    tokenizers = [get_model(key).tokenizer for key in DEFAULT_KEYS]
    defaults = list(DEFAULT_KEYS)
    with tempfile.TemporaryDirectory() as folder:
        extra = random_models(Path(folder))
        rows = [(page, box, defaults, "") for page, box in PAGES]
        rows.insert(5, ("pages/4_Masked_LM.py", "mlm_text", [extra["mlm"]], " [MASK]"))
        rows.append(("pages/7_Question_answering.py", "qa_context", [extra["qa"]], ""))
        for i, (page, box, models, mask) in enumerate(rows):
            if sys.argv[1:] and not any(name in page for name in sys.argv[1:]):
                continue
            long = tagged(source, f"P{i}{mask}")[:N_CHARS]
            short = prefix_of_tokens(long, 512, tokenizers)
            counts = [(len(t(long)["input_ids"]), len(t(short)["input_ids"])) for t in tokenizers]
            b = one_input(page, box, models, short)
            a = one_input(page, box, models, long)
            ratio = a["seconds"] / b["seconds"]
            crashed = a["exception"] or b["exception"]
            who = "both defaults" if models == defaults else Path(models[0]).name
            print(f"{page:32} ({who})", flush=True)
            print(f"    paste {len(long):,} chars, {long.count(chr(10)) + 1} lines, "
                  + " / ".join(f"{n:,}" for n, _ in counts) + f" tokens; short {len(short):,} chars, "
                  f"{short.count(chr(10)) + 1} lines, " + " / ".join(str(n) for _, n in counts) + " tokens")
            print(f"    paste {a['seconds']:7.2f} s / 512 tokens {b['seconds']:6.2f} s = {ratio:5.2f}x "
                  f"(target <= {TARGET:.0f}x)  exception: {'YES ' + first(crashed) if crashed else 'none'}"
                  f"  {'ok' if ratio <= TARGET and not crashed else 'MISSED'}", flush=True)
            if "n" in a:
                print(f"    sentences read: paste {a['n']}, 512-token input {b['n']}")
            # (run_all drops output lines that contain the word "warning")
            for j, message in enumerate(a["warning"][:3]):
                print(f"    yellow box #{j + 1} (paste): {first([message])}")
            if not a["warning"]:
                print("    yellow box (paste): none")
            if a["error"]:
                print(f"    error shown (paste): {first(a['error'])}")
            if a["info"] and not a["warning"]:
                print(f"    first info (paste): {first(a['info'])}")


if __name__ == "__main__":
    main()
