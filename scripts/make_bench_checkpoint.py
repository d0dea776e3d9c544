#!/usr/bin/env python3
"""Write a random-weight Hugging Face Mixtral checkpoint for benchmarks.

    make_bench_checkpoint.py --config configs/models/mixtral-1b-shape.json -o DIR

DIR gets what `save_pretrained` writes for transformers' MixtralForCausalLM built from the
config (bf16 safetensors, weights drawn with a fixed seed) plus a SentencePiece BPE
tokenizer.model trained on shared/data/text, in the Llama style that both our engine and
llama.cpp's convert_hf_to_gguf.py read. The weights are random: the benchmark measures speed,
not text quality.
"""
import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEXT = REPO.parent / "shared" / "data" / "text"


def train_tokenizer(out: Path, text_dir: Path, vocab_size: int) -> int:
    """Train a Llama-style SentencePiece BPE model (byte fallback, <unk>/<s>/</s> = 0/1/2).

    Returns the vocab size it got: a smaller one when the corpus can't fill vocab_size
    (convert_hf_to_gguf pads the GGUF vocab up to the config's vocab_size)."""
    import sentencepiece as spm

    files = sorted(str(p) for p in text_dir.glob("*.txt"))
    if not files:
        sys.exit(f"error: no *.txt under {text_dir}")
    size = vocab_size
    while True:
        try:
            spm.SentencePieceTrainer.train(
                input=",".join(files), model_prefix=str(out / "tokenizer"), model_type="bpe",
                vocab_size=size, character_coverage=0.9999, byte_fallback=True, split_digits=True,
                unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True,
                remove_extra_whitespaces=False, normalization_rule_name="identity",
                allow_whitespace_only_pieces=True, max_sentence_length=16384,
                num_threads=os.cpu_count() or 1, minloglevel=2)
            break
        except RuntimeError as e:  # "Vocabulary size is too high": retry smaller
            if "ocabulary size" not in str(e) or size <= 1024:
                raise
            size = size * 3 // 4
    (out / "tokenizer.vocab").unlink(missing_ok=True)
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="model config.json (a Mixtral shape)")
    ap.add_argument("-o", "--out", required=True, help="checkpoint folder to write")
    ap.add_argument("--text", default=str(DEFAULT_TEXT), help="folder of *.txt to train the tokenizer on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.02, help="init std of the weights")
    args = ap.parse_args()

    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    cfg = json.loads(Path(args.config).read_text())
    if cfg.get("model_type", "mixtral") != "mixtral":
        sys.exit(f"error: {args.config} is model_type {cfg.get('model_type')!r}, not mixtral")
    cfg.pop("model_type", None)
    cfg.pop("torch_dtype", None)
    config = MixtralConfig(**cfg, initializer_range=args.std, bos_token_id=1, eos_token_id=2,
                           tie_word_embeddings=False, torch_dtype="bfloat16")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_default_dtype(torch.bfloat16)  # init straight in bf16: half the memory
    model = MixtralForCausalLM(config).eval()
    model.save_pretrained(out, safe_serialization=True, max_shard_size="20GB")
    del model

    got = train_tokenizer(out, Path(args.text), config.vocab_size)
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps(
        {**special, "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
         "model_max_length": config.max_position_embeddings, "legacy": False}, indent=2) + "\n")
    print(f"wrote {out} (tokenizer.model vocab {got}, config vocab {config.vocab_size})")


if __name__ == "__main__":
    main()
