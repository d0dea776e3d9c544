#!/usr/bin/env python3
"""Writes tests/fixtures/moe_plus_plus/: a tiny random MoE++ checkpoint in the released layout
and what moe_plus_plus_reference.py computes for it (see reference_fixture.py). expected.json
also says how often each kind of expert (FFN, constant, copy, zero) the prompt chose, so the
fixture is known to exercise them all.
Run: python3 tests/reference/make_moe_plus_plus_fixture.py  (torch, safetensors)
"""
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import moe_plus_plus_reference as ref  # noqa: E402
import reference_fixture  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "moe_plus_plus"
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


def expert_kinds(weights):
    """How often the prompt chose each kind of expert, over every layer."""
    counts = {"ffn": 0, "constant": 0, "copy": 0, "zero": 0}
    ffn, constant, copy, zero = ref.layout(CONFIG)
    gate = ref.gate

    def counting_gate(config, logits):
        idx, w = gate(config, logits)
        for e in idx.flatten().tolist():
            counts["ffn" if e < ffn else "constant" if e < copy else "copy" if e == copy else "zero"] += 1
        return idx, w
    ref.gate = counting_gate
    with torch.no_grad():
        ref.forward(CONFIG, weights, reference_fixture.PROMPT)
    ref.gate = gate
    return counts


def main():
    torch.manual_seed(0)
    weights = ref.random_weights(CONFIG, seed=7)
    bf16_as_f32 = {k: v.to(torch.bfloat16).float() for k, v in weights.items()}
    reference_fixture.write(OUT, CONFIG, weights, lambda p, ids: ref.forward(CONFIG, p, ids),
                            "moe_plus_plus_reference.py", extra_json={"expert_kinds_chosen": expert_kinds(bf16_as_f32)})


if __name__ == "__main__":
    main()
