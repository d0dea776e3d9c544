#!/usr/bin/env python3
"""Tiny random checkpoints for the config options that change the math (issue 19): Mixtral with
hidden_act gelu (erf), attention
biases on Qwen3-MoE and OLMoE (q, k, v and o), Qwen2-MoE without qkv biases, and Qwen2-MoE with
a sliding window shorter than the prompt on only some layers (layer_types). Same layout and
reference as make_hf_fixtures.py, whose helpers it uses.
Run: python3 tests/reference/make_hf_option_fixtures.py  (torch, transformers, safetensors)
"""
import torch

from make_hf_fixtures import COMMON, spread_weights, write_fixture


def main():
    torch.manual_seed(0)
    from transformers import (MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3MoeConfig,
                              Qwen3MoeForCausalLM)

    gelu = MixtralConfig(**COMMON, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                         rope_theta=10000.0, hidden_act="gelu")
    m = MixtralForCausalLM(gelu)
    spread_weights(m, 10)
    write_fixture("mixtral-gelu", m)

    qwen3 = Qwen3MoeConfig(**COMMON, intermediate_size=80, moe_intermediate_size=32, num_experts=4,
                           num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                           attention_bias=True)
    m = Qwen3MoeForCausalLM(qwen3)
    spread_weights(m, 11)
    write_fixture("qwen3_moe-attention-bias", m)

    olmoe = OlmoeConfig(**COMMON, intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                        attention_bias=True)
    m = OlmoeForCausalLM(olmoe)
    spread_weights(m, 12)
    write_fixture("olmoe-attention-bias", m)

    qwen2 = dict(COMMON, intermediate_size=80, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
                 shared_expert_intermediate_size=48, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[])
    m = Qwen2MoeForCausalLM(Qwen2MoeConfig(**qwen2, qkv_bias=False))
    spread_weights(m, 13)
    write_fixture("qwen2_moe-no-qkv-bias", m)

    # A 4-token window on layer 0 only (even layers below max_window_layers = 2): the prompt
    # has 11 tokens, so the window cuts keys, and layers 1 and 2 must not.
    sliding = Qwen2MoeConfig(**qwen2, use_sliding_window=True, sliding_window=4, max_window_layers=2)
    assert sliding.layer_types == ["sliding_attention", "full_attention", "full_attention"], sliding.layer_types
    m = Qwen2MoeForCausalLM(sliding)
    spread_weights(m, 14)
    write_fixture("qwen2_moe-sliding", m)


if __name__ == "__main__":
    main()
