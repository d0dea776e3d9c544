#!/usr/bin/env python3
"""Tiny random GLM-4.5 (glm4_moe) checkpoints and the logits transformers computes for them
(issue 19, item 3). Same layout and reference as make_hf_fixtures.py, whose helpers it uses.

  glm4_moe        partial RoPE (half the head), q/k/v biases, per-head QK norm, sigmoid routing
                  with a nonzero e_score_correction_bias over groups, norm_topk_prob, a routed
                  scaling factor, one shared expert, one dense first layer
  glm4_moe-plain  no QK norm, one group, no renormalisation, full RoPE, two dense layers (one MoE layer); f32
Run: python3 tests/reference/make_hf_glm4_moe_fixtures.py  (torch, transformers, safetensors)
"""
import torch

from make_hf_fixtures import ROOT, spread_weights, write_fixture

BASE = dict(vocab_size=256, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=128, rms_norm_eps=1e-5, tie_word_embeddings=False, intermediate_size=80,
            moe_intermediate_size=32, attention_bias=True)


def main():
    torch.manual_seed(0)
    from transformers import Glm4MoeConfig, Glm4MoeForCausalLM

    full = Glm4MoeConfig(**BASE, n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=1, first_k_dense_replace=1,
                         n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=1.8, use_qk_norm=True,
                         partial_rotary_factor=0.5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                     "partial_rotary_factor": 0.5})
    m = Glm4MoeForCausalLM(full)
    spread_weights(m, 31)
    with torch.no_grad():
        for layer in m.model.layers[1:]:
            layer.mlp.gate.e_score_correction_bias.copy_(0.2 * torch.randn(layer.mlp.gate.e_score_correction_bias.shape))
    write_fixture("glm4_moe", m)

    plain = Glm4MoeConfig(**dict(BASE, attention_bias=False, num_hidden_layers=3, moe_intermediate_size=16), n_routed_experts=6, num_experts_per_tok=2,
                          n_shared_experts=2, first_k_dense_replace=2, n_group=1, topk_group=1, norm_topk_prob=False,
                          routed_scaling_factor=1.0, use_qk_norm=False, partial_rotary_factor=1.0,
                          rope_parameters={"rope_type": "default", "rope_theta": 50000.0, "partial_rotary_factor": 1.0})
    m = Glm4MoeForCausalLM(plain)
    spread_weights(m, 32)
    write_fixture("glm4_moe-plain", m, dtype=torch.float32)


if __name__ == "__main__":
    main()
