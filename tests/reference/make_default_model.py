#!/usr/bin/env python3
"""Writes configs/default-model/: the model `moe run` runs without --model until a trained one
exists. A Mixtral-style MoE (4 layers, 8 experts, top-2) with seeded random weights in bf16, and
the byte-level BPE tokenizer trained on ../shared/data/text by
tests/unit/tokenizer/make_tokenizer_fixtures.py (gpt2_style).
Run: python3 tests/reference/make_default_model.py
"""
import pathlib
import shutil

import torch
from transformers import MixtralConfig, MixtralForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "configs" / "default-model"
TOKENIZER = ROOT / "tests" / "unit" / "tokenizer" / "data" / "gpt2_style"


def main():
    torch.manual_seed(2026)
    config = MixtralConfig(vocab_size=2048, hidden_size=128, intermediate_size=96, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_local_experts=8,
                           num_experts_per_tok=2, max_position_embeddings=2048, rope_theta=10000.0,
                           bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    model = MixtralForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 1.0 / p.shape[-1] ** 0.5)
    OUT.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(OUT)
    (OUT / "generation_config.json").unlink(missing_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER / name, OUT / name)
    print(sorted((p.name, p.stat().st_size) for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
