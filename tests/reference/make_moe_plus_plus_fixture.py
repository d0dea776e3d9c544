#!/usr/bin/env python3
"""Writes tests/fixtures/moe_plus_plus/: a tiny random MoE++ checkpoint in the released layout
(config.json, bf16 model.safetensors) and what moe_plus_plus_reference.py computes for it in f32
(expected.safetensors "logits" for every prompt position, expected.json with the greedy
continuation), in the format of the transformers fixtures. Also says how often each kind of
expert (FFN, constant, copy, zero) was chosen, so the fixture is known to exercise them all.
Run: python3 tests/reference/make_moe_plus_plus_fixture.py  (torch, safetensors)
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import moe_plus_plus_reference as ref  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "moe_plus_plus"
PROMPT = [1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3]
NEW_TOKENS = 8

CONFIG = {
    "model_type": "moe_plus_plus", "architectures": ["MoEForCausalLM"],
    "vocab_size": 256, "hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
    "num_experts": [12], "num_constant_experts": 2, "num_experts_per_tok": 2, "moe_expert_interval": 1,
    "moe_use_mixtral_gating": False, "moe_2layer_gate": True, "moe_use_logits_norm": True,
    "moe_gate_norm_std": 1.0, "moe_feature_no_mul_topk": False,
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
}


def main():
    torch.manual_seed(0)
    p = ref.random_weights(CONFIG, seed=7)
    p = {k: v.to(torch.bfloat16) for k, v in p.items()}  # stored as released models store them
    pf = {k: v.float() for k, v in p.items()}
    with torch.no_grad():
        logits = ref.forward(CONFIG, pf, PROMPT)
        seq = list(PROMPT)
        for _ in range(NEW_TOKENS):
            seq.append(int(ref.forward(CONFIG, pf, seq)[-1].argmax()))
        # Which kinds of expert the prompt chose, layer by layer.
        counts = {"ffn": 0, "constant": 0, "copy": 0, "zero": 0}
        ffn, constant, copy, zero = ref.layout(CONFIG)
        hook = ref.gate

        def counting_gate(config, lg):
            idx, w = hook(config, lg)
            for e in idx.flatten().tolist():
                counts["ffn" if e < ffn else "constant" if e < copy else "copy" if e == copy else "zero"] += 1
            return idx, w
        ref.gate = counting_gate
        ref.forward(CONFIG, pf, PROMPT)
        ref.gate = hook
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in p.items()}, str(OUT / "model.safetensors"))
    save_file({"logits": logits.contiguous()}, str(OUT / "expected.safetensors"))
    (OUT / "expected.json").write_text(json.dumps({
        "prompt": PROMPT, "generated": seq[len(PROMPT):], "expert_kinds_chosen": counts,
        "torch": torch.__version__,
        "note": "f32 reference over bf16 weights; see tests/reference/moe_plus_plus_reference.py"}, indent=1) + "\n")
    print(OUT, counts, seq[len(PROMPT):])


if __name__ == "__main__":
    main()
