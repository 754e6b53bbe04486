"""Layer-wise probe fitting and linear CKA time against corpus size; MiniLM's POS probe curve.

Synthetic (seeded): word vectors of the embedded models' shapes, MiniLM 7 layers x 384 and
SmolLM2 31 layers x 576, at N = 500 / 1000 / 2000 / 4000 words (sentences of 8-18 words, 17
part-of-speech-like classes at skewed, UPOS-like frequencies, word types drawn from a Zipf
vocabulary so that the control task sees repeated types). A word's vector is its class's
centroid plus its type's vector plus noise, mixed differently at each layer.

  `layer_probes` (a probe and a control probe per layer), ridge and logistic: seconds per call,
  logistic / ridge at each size, and largest / smallest size (N x8). SmolLM2-shaped logistic is
  the slowest row and is timed only with --full.
  `cka_matrix`: MiniLM-shaped against SmolLM2-shaped (7 x 31 layers) and each against itself,
  with the form `similarity` picks (Gram n x n, or feature p x q).

Real: the bundled corpus read by all-MiniLM-L6-v2 (model load, word-vector extraction, spaCy
load and tagging, the ridge POS probe; `probe_curves` end to end with the corpus and tags
cached), and the POS curve per layer: accuracy, control, selectivity, majority baseline.

Every timing is one call unless --repeat says more (then medians of calls interleaved across
every size and kind).

    python bench/probe_bench.py [--quick] [--full] [--repeat 1] [--models all-MiniLM-L6-v2 ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import device_line, timed_side_by_side

from ctxlens.analysis.probing import layer_probes, make_probe
from ctxlens.analysis.similarity import _use_gram, cka_matrix

SEED = 0
SIZES = (500, 1000, 2000, 4000)
QUICK_SIZES = (500, 1000)
SHAPES = {"MiniLM": (7, 384), "SmolLM2": (31, 576)}
# Universal POS tags at roughly the frequencies of English prose (normalised below).
CLASSES = {"NOUN": 19, "PUNCT": 12, "VERB": 12, "ADP": 10, "DET": 9, "PRON": 7, "ADJ": 6, "AUX": 5, "ADV": 5,
           "PROPN": 4, "CCONJ": 3, "PART": 3, "SCONJ": 2, "NUM": 1.5, "INTJ": 0.5, "SYM": 0.3, "X": 0.2}
VOCAB = 5000
ZIPF = 1.1
AMBIGUOUS = 0.1  # share of words whose class is not their type's usual one
MODELS = ("all-MiniLM-L6-v2",)


class Synthetic:
    """Labelled words of a synthetic corpus and their vectors at every layer of each shape;
    the first n words of the largest corpus are the corpus of size n."""

    def __init__(self, n_words: int, seed: int = SEED):
        rng = np.random.default_rng(seed)
        names = np.array(list(CLASSES))
        p_class = np.array(list(CLASSES.values()), dtype=float)
        p_class /= p_class.sum()
        p_type = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF
        p_type /= p_type.sum()
        usual = rng.choice(len(names), size=VOCAB, p=p_class)
        type_id = rng.choice(VOCAB, size=n_words, p=p_type)
        label_id = np.where(rng.random(n_words) < AMBIGUOUS, rng.choice(len(names), size=n_words, p=p_class),
                            usual[type_id])
        lengths = rng.integers(8, 19, size=n_words // 8 + 1)  # 8-18 words, 13 on average
        self.sentence_ids = np.repeat(np.arange(len(lengths)), lengths)[:n_words]
        self.labels = names[label_id]
        self.types = [f"w{t}" for t in type_id]
        self.vectors = {}
        for name, (n_layers, dim) in SHAPES.items():
            centroid = rng.standard_normal((len(names), dim), dtype=np.float32)
            type_vector = rng.standard_normal((VOCAB, dim), dtype=np.float32)
            x = np.empty((n_layers, n_words, dim), np.float32)
            for layer in range(n_layers):
                depth = layer / (n_layers - 1)  # word identity fades, class peaks mid-depth
                x[layer] = ((0.3 + 0.5 * np.sin(np.pi * depth)) * centroid[label_id]
                            + (1.2 - depth) * type_vector[type_id]
                            + 1.5 * rng.standard_normal((n_words, dim), dtype=np.float32))
            self.vectors[name] = x

    def probes(self, shape: str, n: int, kind: str):
        x = self.vectors[shape][:, :n]
        depth = np.linspace(0.0, 1.0, x.shape[0])
        return layer_probes(x, self.labels[:n], self.types[:n], self.sentence_ids[:n], depth, kind=kind, seed=SEED)

    def layers(self, shape: str, n: int) -> np.ndarray:
        return self.vectors[shape][:, :n]


def warm_up(data: Synthetic, n: int) -> None:
    """Import scikit-learn, fit each probe once on a tiny input and run the smallest ridge and
    CKA calls once, outside the timings (the first call of a process pays for them)."""
    rng = np.random.default_rng(SEED)
    x, y = rng.standard_normal((60, 8)), np.repeat(["a", "b", "c"], 20)
    for kind in ("ridge", "logistic"):
        make_probe(kind).fit(x, y)
    data.probes("MiniLM", n, "ridge")
    cka_matrix(data.layers("MiniLM", n), data.layers("SmolLM2", n))


def cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def synthetic(sizes: tuple[int, ...], full: bool, repeat: int) -> None:
    start = time.perf_counter()
    data = Synthetic(max(sizes))
    print(f"synthetic corpus built in {time.perf_counter() - start:.1f} s (seed {SEED}): {len(CLASSES)} classes, "
          f"Zipf({ZIPF}) vocabulary of {VOCAB}, {AMBIGUOUS:.0%} of words off their type's usual class")
    warm_up(data, sizes[0])
    fns = {}  # every size's calls in one interleaved run, so the scaling ratios are side by side too
    for n in sizes:
        fns[n, "MiniLM ridge"] = lambda n=n: data.probes("MiniLM", n, "ridge")
        fns[n, "MiniLM logistic"] = lambda n=n: data.probes("MiniLM", n, "logistic")
        fns[n, "SmolLM2 ridge"] = lambda n=n: data.probes("SmolLM2", n, "ridge")
        if full:
            fns[n, "SmolLM2 logistic"] = lambda n=n: data.probes("SmolLM2", n, "logistic")
        fns[n, "cka MiniLM x SmolLM2"] = lambda n=n: cka_matrix(data.layers("MiniLM", n), data.layers("SmolLM2", n))
        fns[n, "cka MiniLM self"] = lambda n=n: cka_matrix(data.layers("MiniLM", n))
        fns[n, "cka SmolLM2 self"] = lambda n=n: cka_matrix(data.layers("SmolLM2", n))
    t = timed_side_by_side(fns, repeats=repeat, warmup=0)
    probe_rows = {n: {k: v for (m, k), v in t.items() if m == n and not k.startswith("cka")} for n in sizes}
    cka_rows = {n: {k: v for (m, k), v in t.items() if m == n and k.startswith("cka")} for n in sizes}

    n_sent = {n: len(np.unique(data.sentence_ids[:n])) for n in sizes}
    small, large = sizes[0], sizes[-1]
    print()
    print(f"### Synthetic probes: seconds per `layer_probes` call (a probe and a control probe per layer; "
          f"{'median of ' + str(repeat) if repeat > 1 else 'one call'})")
    print()
    print("| words | sentences | MiniLM 7x384 ridge | logistic | logistic / ridge "
          "| SmolLM2 31x576 ridge | logistic | logistic / ridge |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        r = probe_rows[n]
        ml, mr, sl, sr = r["MiniLM logistic"], r["MiniLM ridge"], r.get("SmolLM2 logistic"), r["SmolLM2 ridge"]
        print(f"| {n:,} | {n_sent[n]} | {cell(mr)} | {cell(ml)} | {ratio(ml, mr)} "
              f"| {cell(sr)} | {cell(sl)} | {ratio(sl, sr)} |")
    if len(sizes) > 1:
        r0, r1 = probe_rows[small], probe_rows[large]
        print(f"| {large:,} / {small:,} (x{large / small:.0f} words) | | "
              f"{ratio(r1['MiniLM ridge'], r0['MiniLM ridge'])} | {ratio(r1['MiniLM logistic'], r0['MiniLM logistic'])} "
              f"| | {ratio(r1['SmolLM2 ridge'], r0['SmolLM2 ridge'])} "
              f"| {ratio(r1.get('SmolLM2 logistic'), r0.get('SmolLM2 logistic'))} | |")
    if not full:
        print()
        print("SmolLM2-shaped logistic probes not timed (the slowest row: 62 softmax fits per call); --full times them.")
    check = data.probes("MiniLM", large, "ridge")
    mid = len(check) // 2
    print(f"(sanity, MiniLM-shaped ridge at N={large:,}, middle layer: accuracy {check.accuracy[mid]:.2f}, "
          f"control {check.control[mid]:.2f}, majority {check.majority[mid]:.2f})")

    print()
    print(f"### Synthetic linear CKA: seconds per `cka_matrix` call ({'median of ' + str(repeat) if repeat > 1 else 'one call'})")
    print()
    print("| words | MiniLM x SmolLM2 (7 x 31) | MiniLM self (7 x 7) | SmolLM2 self (31 x 31) | form (cross / self / self) |")
    print("|---:|---:|---:|---:|---|")
    pa, pb = SHAPES["MiniLM"][1], SHAPES["SmolLM2"][1]
    for n in sizes:
        r = cka_rows[n]
        la, lb = SHAPES["MiniLM"][0], SHAPES["SmolLM2"][0]
        shapes = ((pa, pb, la, lb, False), (pa, pa, la, la, True), (pb, pb, lb, lb, True))
        forms = " / ".join("Gram" if _use_gram(n, p, q, a, b, shared) else "feature" for p, q, a, b, shared in shapes)
        print(f"| {n:,} | {cell(r['cka MiniLM x SmolLM2'])} | {cell(r['cka MiniLM self'])} "
              f"| {cell(r['cka SmolLM2 self'])} | {forms} |")
    if len(sizes) > 1:
        r0, r1 = cka_rows[small], cka_rows[large]
        print(f"| {large:,} / {small:,} (x{large / small:.0f} words) "
              + "".join(f"| {ratio(r1[k], r0[k])} " for k in ("cka MiniLM x SmolLM2", "cka MiniLM self",
                                                                "cka SmolLM2 self")) + "| |")


def real(model: str) -> None:
    from ctxlens.methods.corpus import corpus_words
    from ctxlens.methods.labels import label_source, tag_corpus
    from ctxlens.methods.probes import probe_corpus, probe_curves
    from ctxlens.models.registry import get_model

    print()
    print(f"### Real: the bundled corpus read by {model}")
    print()
    try:
        start = time.perf_counter()
        get_model(model)
        load_s = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - any failure to load skips this model, said aloud
        print(f"skipped: {model} could not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        return
    start = time.perf_counter()
    corpus = corpus_words(model)
    extract_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        source = label_source()  # loads spaCy's pipeline
        spacy_s = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - CapabilityMissing, or a broken install
        print(f"skipped the probes: spaCy's tagger could not load ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:200]})")
        return
    start = time.perf_counter()
    tags = tag_corpus(corpus.texts)
    tag_s = time.perf_counter() - start
    start = time.perf_counter()
    frame = probe_corpus(corpus, "pos", "ridge", seed=SEED)
    probe_s = time.perf_counter() - start
    start = time.perf_counter()
    curve = probe_curves(model, "pos", "ridge")  # the app's path: corpus and tags cached, probes fitted again
    curves_s = time.perf_counter() - start
    same = np.allclose(curve[["accuracy", "control"]].to_numpy(), frame[["accuracy", "control"]].to_numpy())
    n_layers, n_words, dim = corpus.vectors.shape
    print(f"{len(corpus.texts)} sentences, {n_words:,} words ({len(tags.labels['pos']):,} of {tags.n_words:,} "
          f"labelled by spaCy), {n_layers} layers x {dim}")
    print()
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| model load | {load_s:.2f} |")
    print(f"| word-vector extraction (`corpus_words`) | {extract_s:.2f} |")
    print(f"| spaCy pipeline load | {spacy_s:.2f} |")
    print(f"| spaCy tagging (`tag_corpus`) | {tag_s:.2f} |")
    print(f"| ridge POS probes, {n_layers} layers (`probe_corpus`) | {probe_s:.2f} |")
    print(f"| `probe_curves` with corpus and tags cached | {curves_s:.2f} |")
    print()
    print(f"POS curve (ridge; train {int(curve.n_train[0]):,} / test {int(curve.n_test[0]):,} words, split by "
          f"sentence; seed {SEED}){'' if same else ' -- NOTE: probe_curves differs from probe_corpus'}:")
    print()
    print("| layer | depth | accuracy | control | selectivity | majority |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in curve.itertuples():
        print(f"| {row.layer} | {row.relative_depth:.2f} | {row.accuracy:.3f} | {row.control:.3f} "
              f"| {row.selectivity:+.3f} | {row.majority:.3f} |")
    best = curve.loc[curve.selectivity.idxmax()]
    print()
    print(f"most selective layer: {int(best.layer)} (selectivity {best.selectivity:+.3f}); {source.describe('pos')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"synthetic sizes {QUICK_SIZES} only")
    parser.add_argument("--full", action="store_true", help="also time SmolLM2-shaped logistic probes (slow)")
    parser.add_argument("--repeat", type=int, default=1, help="calls per timing (median)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), help="models for the real corpus part")
    args = parser.parse_args()
    print(device_line())
    started = time.perf_counter()
    synthetic(QUICK_SIZES if args.quick else SIZES, args.full, args.repeat)
    for model in args.models:
        real(model)
    print()
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
