#!/usr/bin/env python3
"""Writes tests/fixtures/bam-expert-kv/ and tests/fixtures/bam-shared-kv/: tiny random BAM
checkpoints (bf16) in the config convention of docs/MODEL_CONFIGS.md and what bam_reference.py
computes for them in f32 (expected.safetensors "logits" for every prompt position,
expected.json with the greedy continuation). Run: python3 tests/reference/make_bam_fixtures.py
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bam_reference as ref  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
PROMPT = [1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3]
NEW_TOKENS = 8


def config(kv):
    return {"model_type": "bam", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "num_attention_experts": 3, "attention_kv": kv,
            "num_experts": 4, "num_experts_per_tok": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "max_position_embeddings": 256, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
            "torch_dtype": "bfloat16"}


def main():
    for kv in ("expert", "shared"):
        c = config(kv)
        p = {k: v.to(torch.bfloat16) for k, v in ref.random_weights(c, seed=21).items()}
        pf = {k: v.float() for k, v in p.items()}
        with torch.no_grad():
            logits = ref.forward(c, pf, PROMPT)
            seq = list(PROMPT)
            for _ in range(NEW_TOKENS):
                seq.append(int(ref.forward(c, pf, seq)[-1].argmax()))
        out = ROOT / f"bam-{kv}-kv"
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(c, indent=1) + "\n")
        save_file({k: v.contiguous() for k, v in p.items()}, str(out / "model.safetensors"))
        save_file({"logits": logits}, str(out / "expected.safetensors"))
        (out / "expected.json").write_text(json.dumps({
            "prompt": PROMPT, "generated": seq[len(PROMPT):], "torch": torch.__version__,
            "note": "f32 reference over bf16 weights; see tests/reference/bam_reference.py"}, indent=1) + "\n")
        print(out, seq[len(PROMPT):])


if __name__ == "__main__":
    main()
