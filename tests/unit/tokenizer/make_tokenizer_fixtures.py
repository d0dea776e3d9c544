#!/usr/bin/env python3
"""Trains small tokenizers on ../shared/data/text with Hugging Face `tokenizers` and
`sentencepiece`, and records what those libraries produce for a fixed list of strings.

Writes tests/unit/tokenizer/data/<name>/ (tokenizer files) and data/expected.json:
  {name: [{"text": ..., "ids": [...], "decoded": ...}, ...]}
Run: python3 tests/unit/tokenizer/make_tokenizer_fixtures.py
"""
import json
import pathlib

import sentencepiece as spm
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
TEXT = HERE.parents[2].parent / "shared" / "data" / "text"
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

STRINGS = [
    "", "Hello, world!", "  leading and   internal   spaces  ", "tabs\tand\nnewlines\n\n\r\n",
    "The quick brown fox jumps over the lazy dog.", "Numbers: 1234567890 3.14159 -42 1e-9",
    "Ünïcödé: naïve café, Straße, 東京, Москва, مرحبا, שלום, 🤖🚀 emoji, e\u0301 combining",
    "def f(x):\n    return x ** 2  # square\n", "<|endoftext|>between<|im_start|> special tokens<|endoftext|>",
    "don't won't it's we'll they're I'M", "a" * 300, "    \n    ", "x=1;y=2;print(x+y)", "¯\\_(ツ)_/¯",
    "Mixture-of-Experts models route each token to k experts.",
]


def corpus():
    for name in sorted(TEXT.glob("*.txt")):
        text = name.read_text(encoding="utf-8", errors="replace")
        for i in range(0, min(len(text), 400_000), 2000):
            yield text[i:i + 2000]


def byte_level_bpe(name, split_regex=None, vocab_size=2048):
    tok = Tokenizer(models.BPE())
    if split_regex:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split_regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    out = DATA / name
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": False}, indent=1) + "\n")
    fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    return [{"text": s, "ids": fast.encode(s), "decoded": fast.decode(fast.encode(s))} for s in STRINGS]


def sentencepiece_bpe(name):
    out = DATA / name
    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(list(corpus())), model_prefix=str(out / "tokenizer"),
                                   vocab_size=1000, model_type="bpe", byte_fallback=True, character_coverage=0.98,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
    (out / "tokenizer.vocab").unlink()
    # The trainer records its absolute output prefix in the model; keep the file machine-neutral.
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((out / "tokenizer.model").read_bytes())
    proto.trainer_spec.model_prefix = "tokenizer"
    (out / "tokenizer.model").write_bytes(proto.SerializeToString())
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    return [{"text": s, "ids": [1] + sp.encode(s), "decoded": sp.decode(sp.encode(s))} for s in STRINGS]


def main():
    expected = {
        "gpt2_style": byte_level_bpe("gpt2_style"),
        "qwen2_style": byte_level_bpe("qwen2_style", split_regex=QWEN2_PATTERN, vocab_size=1500),
        "sentencepiece": sentencepiece_bpe("sentencepiece"),
    }
    (DATA / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
