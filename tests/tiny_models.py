"""Tiny random models of every Hugging Face family, written by the tests themselves.

2 layers, 2 heads, hidden 32, a small WordPiece or byte-level BPE vocabulary: fast, and they
go through the real loading code (save_pretrained → our loader → from_pretrained).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers as tf
from tokenizers import ByteLevelBPETokenizer

WORDS = (
    "the a an of to and in is was it on at by for with as from that this he she they we you i "
    "bank river money water sat deposit loan play played game capital france paris city "
    "question answer context who what where when why how bert gpt model word sentence "
    "next token mask predict cat dog mat house"
).split()
PUNCT = list(".,;:!?'\"()-<>/&")
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

CORPUS = [
    "The river bank was wet after the rain.",
    "She went to the bank to deposit money.",
    "The capital of France is Paris.",
    "Who played the game at the house?",
    "BERT and GPT predict the next token or a masked word.",
    "A cat sat on the mat with a dog.",
] * 4

_SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _wordpiece_vocab() -> list[str]:
    pieces = SPECIALS + WORDS + PUNCT + list(LETTERS) + ["##" + c for c in LETTERS] + ["##ing", "##ed"]
    return list(dict.fromkeys(pieces))  # "a" and "i" are both words and letters


def bert_tokenizer():
    vocab = _wordpiece_vocab()
    return tf.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}), len(vocab)


def _bert_config(vocab_size: int, **extra) -> tf.BertConfig:
    return tf.BertConfig(vocab_size=vocab_size, max_position_embeddings=64, **_SIZE, **extra)


def save_bert(folder: Path, head: str) -> Path:
    """head: "mlm", "nsp" (BERT pre-training heads), "none" (bare encoder, like MiniLM), "qa"."""
    torch.manual_seed(0)
    tokenizer, vocab_size = bert_tokenizer()
    config = _bert_config(vocab_size)
    cls = {
        "mlm": tf.BertForMaskedLM,
        "nsp": tf.BertForPreTraining,
        "none": tf.BertModel,
        "qa": tf.BertForQuestionAnswering,
    }[head]
    model = cls(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_bert_head(folder: Path, cls, **config_extra) -> Path:
    """A tiny BERT with any head class (e.g. BertForSequenceClassification) and config extras."""
    torch.manual_seed(0)
    tokenizer, vocab_size = bert_tokenizer()
    cls(_bert_config(vocab_size, **config_extra)).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_classifiers(root: Path) -> dict[str, str]:
    """A tiny sentence classifier and token classifier, with label names, by kind."""
    return {
        "bert-seq": str(save_bert_head(root / "seq", tf.BertForSequenceClassification,
                                       id2label={0: "negative", 1: "positive"})),
        "bert-tok": str(save_bert_head(root / "tok", tf.BertForTokenClassification,
                                       id2label={0: "O", 1: "B-LOC", 2: "I-LOC"})),
    }


def loader(folders: dict[str, str]):
    """get(kind): the model in folders[kind], loaded on the CPU once."""
    from ctxlens.models.loading import load_hf, spec_for

    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = load_hf(spec_for(folders[kind]), device="cpu")
        return cache[kind]

    return get


def save_bert_claiming_missing_head(folder: Path) -> Path:
    """A checkpoint whose config names BertForMaskedLM but whose weights have no MLM head."""
    save_bert(folder, "none")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["BertForMaskedLM"]
    config_path.write_text(json.dumps(config))
    return folder


def gpt2_tokenizer(folder: Path):
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line]
    return tf.GPT2Tokenizer(vocab=vocab, merges=merges)


def _save_causal(folder: Path, model_for) -> Path:
    """A causal LM over the tiny byte-level BPE: model_for(tokenizer) builds the network."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = gpt2_tokenizer(folder)
    model_for(tokenizer).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _special_ids(tokenizer) -> dict:
    return {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


def save_gpt2(folder: Path) -> Path:
    return _save_causal(folder, lambda tok: tf.GPT2LMHeadModel(
        tf.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2, **_special_ids(tok))))


def save_llama(folder: Path) -> Path:
    """A Llama-style decoder: rotary positions, grouped-query attention (4 query heads, 2 keys)."""
    return _save_causal(folder, lambda tok: tf.LlamaForCausalLM(tf.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, **_special_ids(tok))))


def save_roberta(folder: Path) -> Path:
    """RoBERTa: byte-level BPE, <s> … </s></s> … </s> pairs, positions offset past padding."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = gpt2_tokenizer(folder)
    # RoBERTa's layout: <s> <pad> </s> <unk> first (pad id 1 indexes the position table too).
    pieces = ["<s>", "<pad>", "</s>", "<unk>"] + sorted(bpe.get_vocab(), key=bpe.get_vocab().get) + ["<mask>"]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:] if line]
    tokenizer = tf.RobertaTokenizer(vocab=vocab, merges=merges)
    config = tf.RobertaConfig(vocab_size=len(vocab), max_position_embeddings=66, pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_SIZE)
    tf.RobertaForMaskedLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_distilbert(folder: Path) -> Path:
    torch.manual_seed(0)
    tokenizer, vocab_size = bert_tokenizer()
    config = tf.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                 max_position_embeddings=64)
    tf.DistilBertForMaskedLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_all(root: Path) -> dict[str, Path]:
    return {
        "bert-mlm": save_bert(root / "bert-mlm", "mlm"),
        "bert-nsp": save_bert(root / "bert-nsp", "nsp"),
        "bert-bare": save_bert(root / "bert-bare", "none"),
        "bert-qa": save_bert(root / "bert-qa", "qa"),
        "bert-fake-mlm": save_bert_claiming_missing_head(root / "bert-fake-mlm"),
        "gpt2": save_gpt2(root / "gpt2"),
        "llama": save_llama(root / "llama"),
        "roberta": save_roberta(root / "roberta"),
        "distilbert": save_distilbert(root / "distilbert"),
    }
