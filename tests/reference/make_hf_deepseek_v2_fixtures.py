#!/usr/bin/env python3
"""Tiny random DeepSeek-V2 and DeepSeek-V3 checkpoints (multi-head latent attention) and the
logits transformers computes for them (issue 19, item 2). Same layout and reference as
make_hf_fixtures.py, whose helpers it uses; shapes differ from each other so that no dimension
stands in for another (q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim and
v_head_dim all distinct), and every matrix's input width a multiple of 16 (int8/int4 groups).

  deepseek_v2-lite     q_lora_rank null (q_proj), greedy top-k, one dense layer, scaled weights
  deepseek_v2-group    q_lora_rank, group_limited_greedy, attention biases, YaRN with mscale
  deepseek_v3          sigmoid scores, e_score_correction_bias, groups, norm_topk_prob, and a few
                       tensors of an MTP layer after the last (never read)
  deepseek_v3-plain    one group, rope_interleave false, q_lora_rank null, no renormalisation,
                       YaRN with mscale and mscale_all_dim; f32 weights
Run: python3 tests/reference/make_hf_deepseek_v2_fixtures.py  (torch, transformers, safetensors)
"""
import torch

from safetensors.torch import load_file, save_file

from make_hf_fixtures import ROOT, spread_weights, write_fixture

MLA = dict(vocab_size=256, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
           max_position_embeddings=128,
           rms_norm_eps=1e-5, tie_word_embeddings=False, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
           v_head_dim=12, intermediate_size=80, moe_intermediate_size=32)


def add_mtp_layer(name, layer, hidden, width):
    """A few tensors of a multi-token-prediction layer after the last one, as DeepSeek-V3's release
    has (model.layers.61.*): transformers and the engine never read them, moe pack leaves them out."""
    path = ROOT / name / "model.safetensors"
    tensors = load_file(str(path))
    g = torch.Generator().manual_seed(99)
    p = f"model.layers.{layer}."
    tensors[p + "enorm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)
    tensors[p + "eh_proj.weight"] = torch.randn(hidden, 2 * hidden, generator=g).to(torch.bfloat16)
    tensors[p + "mlp.experts.0.gate_proj.weight"] = torch.randn(width, hidden, generator=g).to(torch.bfloat16)
    save_file(tensors, str(path), metadata={"format": "pt"})


def main():
    torch.manual_seed(0)
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM

    lite = DeepseekV2Config(**MLA, q_lora_rank=None, n_routed_experts=6, num_experts_per_tok=2, n_shared_experts=1,
                            first_k_dense_replace=1, topk_method="greedy", routed_scaling_factor=1.5,
                            norm_topk_prob=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    m = DeepseekV2ForCausalLM(lite)
    spread_weights(m, 21)
    write_fixture("deepseek_v2-lite", m)

    group = DeepseekV2Config(**dict(MLA, moe_intermediate_size=16), q_lora_rank=48, n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=2,
                             first_k_dense_replace=0, topk_method="group_limited_greedy", n_group=4, topk_group=2,
                             routed_scaling_factor=2.0, norm_topk_prob=False, attention_bias=True,
                             rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                              "original_max_position_embeddings": 32, "mscale": 0.9,
                                              "mscale_all_dim": 0.7, "beta_fast": 32, "beta_slow": 1})
    m = DeepseekV2ForCausalLM(group)
    spread_weights(m, 22)
    write_fixture("deepseek_v2-group", m)

    v3 = DeepseekV3Config(**dict(MLA, moe_intermediate_size=16), q_lora_rank=48, n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=1,
                          first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=2.5,
                          norm_topk_prob=True, rope_interleave=True,
                          rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    m = DeepseekV3ForCausalLM(v3)
    spread_weights(m, 23)
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for layer in m.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.copy_(0.1 * torch.randn(8, generator=g))
    write_fixture("deepseek_v3", m)
    add_mtp_layer("deepseek_v3", 3, 64, 16)

    plain = DeepseekV3Config(**dict(MLA, hidden_size=48, intermediate_size=32, moe_intermediate_size=16), q_lora_rank=None, n_routed_experts=5,
                             num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, n_group=1,
                             topk_group=1, routed_scaling_factor=1.0, norm_topk_prob=False, rope_interleave=False,
                             rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0,
                                              "original_max_position_embeddings": 16, "mscale": 1.0,
                                              "mscale_all_dim": 0.8})
    m = DeepseekV3ForCausalLM(plain)
    spread_weights(m, 24)
    g = torch.Generator().manual_seed(124)
    with torch.no_grad():
        for layer in m.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.copy_(0.1 * torch.randn(5, generator=g))
    write_fixture("deepseek_v3-plain", m, dtype=torch.float32)


if __name__ == "__main__":
    main()
