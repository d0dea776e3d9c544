#!/usr/bin/env python3
"""Writes tiny random Hugging Face MoE checkpoints and the logits transformers computes for them.

Each fixture folder under tests/fixtures/<name>/ holds config.json and bf16 safetensors (as
released models store them, in the hub's per-expert layout), plus:
  expected.safetensors  "logits": f32 [len(prompt), vocab], every position of the prompt
  expected.json         prompt ids, the greedy continuation (KV cache, do_sample=False),
                        and the versions that produced them
The reference runs in f32 on the bf16 weights (model.float()), eager attention.
Run: python3 tests/reference/make_hf_fixtures.py  (torch, transformers, safetensors)
"""
import json
import pathlib
import sys

import torch
import transformers
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
PROMPT = [1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3]
NEW_TOKENS = 8

COMMON = dict(vocab_size=256, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-5,
              tie_word_embeddings=False)


def spread_weights(model, seed):
    """Random init at a scale where routing and logits are far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g) if "norm" in name
                        else 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def write_fixture(name, model, shard_bytes=None, dtype=torch.bfloat16):
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.safetensors*"):
        f.unlink()
    model = model.to(dtype)
    if shard_bytes:
        model.save_pretrained(out, max_shard_size=shard_bytes)
    else:
        model.save_pretrained(out)
    # The reference: the same bf16 values, computed in f32.
    ref = type(model).from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = ref(ids).logits[0].float().contiguous()
        generated = ref.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True,
                                 eos_token_id=None, pad_token_id=0)[0, len(PROMPT):].tolist()
    save_file({"logits": logits}, str(out / "expected.safetensors"))
    (out / "expected.json").write_text(json.dumps({
        "prompt": PROMPT, "generated": generated,
        "transformers": transformers.__version__, "torch": torch.__version__,
        "note": f"f32 reference over {'bf16' if dtype == torch.bfloat16 else 'f32'} weights, eager attention; "
                "see tests/reference/make_hf_fixtures.py",
    }, indent=1) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)
    print(f"{name}: {sum(f.stat().st_size for f in out.iterdir())} bytes, generated {generated}")


def write_deepseek_fixture():
    """DeepSeek-MoE v1 has no transformers class: the reference is deepseek_moe_reference.py,
    first checked against transformers' Mixtral on weights both can run."""
    import deepseek_moe_reference as ds
    from safetensors.torch import load_file
    from transformers import MixtralConfig, MixtralForCausalLM

    base = dict(vocab_size=256, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0, n_routed_experts=6,
                num_experts_per_tok=2, moe_intermediate_size=32, intermediate_size=80, moe_layer_freq=1)
    # 1. The reference equals transformers' Mixtral when DeepSeek's extras are off.
    plain = dict(base, n_shared_experts=0, first_k_dense_replace=0, norm_topk_prob=True)
    p = ds.random_weights(plain, 7)
    mixtral = MixtralForCausalLM(MixtralConfig(**COMMON, intermediate_size=32, num_local_experts=6,
                                               num_experts_per_tok=2, rope_theta=10000.0)).eval()
    renamed = {}
    for k, v in p.items():
        k = k.replace(".mlp.gate.", ".block_sparse_moe.gate.")
        k = k.replace(".mlp.experts.", ".block_sparse_moe.experts.")
        k = k.replace("gate_proj", "w1").replace("up_proj", "w3").replace("down_proj", "w2")
        renamed[k] = v
    tmp = ROOT / ".mixtral-check"
    tmp.mkdir(exist_ok=True)
    save_file(renamed, str(tmp / "model.safetensors"))
    mixtral.config.save_pretrained(tmp)
    mixtral = MixtralForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = mixtral(torch.tensor([PROMPT])).logits[0]
        got = ds.forward(plain, p, PROMPT)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    assert torch.allclose(expected, got, rtol=1e-4, atol=1e-4), (expected - got).abs().max()

    # 2. The fixture: shared experts, a dense first layer, no renormalisation.
    config = dict(base, n_shared_experts=2, first_k_dense_replace=1, norm_topk_prob=False)
    p = {k: v.to(torch.bfloat16) for k, v in ds.random_weights(config, 8).items()}
    out = ROOT / "deepseek"
    out.mkdir(parents=True, exist_ok=True)
    save_file(p, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(dict(config, model_type="deepseek", architectures=["DeepseekForCausalLM"],
                                                     torch_dtype="bfloat16", tie_word_embeddings=False), indent=1) + "\n")
    p = {k: v.float() for k, v in load_file(str(out / "model.safetensors")).items()}
    with torch.no_grad():
        logits = ds.forward(config, p, PROMPT).contiguous()
        ids = list(PROMPT)
        for _ in range(NEW_TOKENS):
            ids.append(int(ds.forward(config, p, ids)[-1].argmax()))
    save_file({"logits": logits}, str(out / "expected.safetensors"))
    (out / "expected.json").write_text(json.dumps({
        "prompt": PROMPT, "generated": ids[len(PROMPT):], "torch": torch.__version__,
        "note": "f32 reference over bf16 weights by tests/reference/deepseek_moe_reference.py",
    }, indent=1) + "\n")
    print(f"deepseek: generated {ids[len(PROMPT):]}")


def main():
    torch.manual_seed(0)
    from transformers import (MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM,
                              Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM)

    mixtral = MixtralConfig(**COMMON, intermediate_size=48, num_local_experts=6, num_experts_per_tok=2,
                            rope_theta=10000.0)
    m = MixtralForCausalLM(mixtral)
    spread_weights(m, 1)
    write_fixture("mixtral", m)
    write_fixture("mixtral-sharded", m, shard_bytes="150KB")

    qwen2 = Qwen2MoeConfig(**COMMON, intermediate_size=80, moe_intermediate_size=32, num_experts=6,
                           num_experts_per_tok=2, shared_expert_intermediate_size=48, norm_topk_prob=False,
                           decoder_sparse_step=1, mlp_only_layers=[1], use_sliding_window=False)
    m = Qwen2MoeForCausalLM(qwen2)
    spread_weights(m, 2)
    write_fixture("qwen2_moe", m)

    qwen3 = Qwen3MoeConfig(**COMMON, intermediate_size=80, moe_intermediate_size=32, num_experts=6,
                           num_experts_per_tok=3, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])
    m = Qwen3MoeForCausalLM(qwen3)
    spread_weights(m, 3)
    write_fixture("qwen3_moe", m)

    yarn = Qwen3MoeConfig(**COMMON, intermediate_size=80, moe_intermediate_size=32, num_experts=4,
                          num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                          rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                           "original_max_position_embeddings": 32})
    m = Qwen3MoeForCausalLM(yarn)
    spread_weights(m, 4)
    write_fixture("qwen3_moe-yarn", m)

    olmoe = OlmoeConfig(**COMMON, intermediate_size=32, num_experts=6, num_experts_per_tok=2, clip_qkv=2.0,
                        norm_topk_prob=False)
    m = OlmoeForCausalLM(olmoe)
    spread_weights(m, 5)
    write_fixture("olmoe", m)

    write_deepseek_fixture()


if __name__ == "__main__":
    main()
