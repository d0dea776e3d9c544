#!/usr/bin/env python3
"""Writes tests/fixtures/ds_moe/: a tiny random DS-MoE checkpoint in the config convention of
docs/MODEL_CONFIGS.md (bf16 safetensors) and what ds_moe_reference.py computes for it in f32:
expected.safetensors "logits" under the config's inference method (top-2), "logits_dense" and
"logits_threshold" (p >= 0.2) for the same prompt; expected.json with the greedy continuation.
Run: python3 tests/reference/make_ds_moe_fixture.py  (torch, safetensors)
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ds_moe_reference as ref  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "ds_moe"
PROMPT = [1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3]
NEW_TOKENS = 8
CONFIG = {
    "model_type": "ds_moe", "vocab_size": 256, "n_embd": 64, "n_layer": 2, "n_head": 8, "num_experts": 4,
    "n_inner": 32, "n_positions": 64, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_pytorch_tanh",
    "position_embedding_type": "learned_absolute", "add_bias": True, "tie_word_embeddings": True,
    "inference_method": {"top_k": 2}, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
}


def main():
    p = {k: v.to(torch.bfloat16) for k, v in ref.random_weights(CONFIG, seed=11).items()}
    pf = {k: v.float() for k, v in p.items()}
    method = CONFIG["inference_method"]
    with torch.no_grad():
        logits = ref.forward(CONFIG, pf, PROMPT, method)
        dense = ref.forward(CONFIG, pf, PROMPT, None)
        threshold = ref.forward(CONFIG, pf, PROMPT, {"threshold": 0.2})
        seq = list(PROMPT)
        for _ in range(NEW_TOKENS):
            seq.append(int(ref.forward(CONFIG, pf, seq, method)[-1].argmax()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in p.items()}, str(OUT / "model.safetensors"))
    save_file({"logits": logits, "logits_dense": dense, "logits_threshold": threshold}, str(OUT / "expected.safetensors"))
    (OUT / "expected.json").write_text(json.dumps({
        "prompt": PROMPT, "generated": seq[len(PROMPT):], "torch": torch.__version__,
        "note": "f32 reference over bf16 weights; see tests/reference/ds_moe_reference.py"}, indent=1) + "\n")
    print(OUT, seq[len(PROMPT):], float((logits - dense).abs().max()))


if __name__ == "__main__":
    main()
