#!/usr/bin/env python3
"""Tiny random checkpoints in the FP8 format DeepSeek-V3, Kimi-K2 and the FP8 releases of Qwen3 and
GLM-4.5 share, and the logits transformers computes on their dequantised weights (issue 19, item 5).

Every Linear of the decoder layers (attention's q_a/q_b or q_proj, k_proj, v_proj, kv_a_proj_with_mqa,
kv_b_proj, o_proj; the dense MLP, the routed and the shared experts) is stored as float8_e4m3fn with an f32
`weight_scale_inv` per block of the config's weight_block_size, the grid ceil-divided so edge
blocks are partial (DeepSeek pads); routers, norms, embeddings and the LM head stay bf16, as in
the releases. Each block's scale is max |w| / 448 and the values are torch's float8_e4m3fn
rounding of w / scale. The reference model holds the dequantised weights
  w = float(fp8) * weight_scale_inv[row // block_rows][col // block_cols]   (one f32 multiply)
computed by transformers' own _dequantize_fp8_weight (and checked against that formula), every
other weight rounded to bf16 first, so the reference's f32 weights are exactly what the fixture
stores.

  deepseek_v3-fp8         the releases' 128 x 128 blocks over shapes that are not multiples of
                          128 (hidden 160, dense width 136, q_b 144 rows, kv_b 168 rows with a
                          head across the block edge), q LoRA, groups
  deepseek_v3-fp8-blocks  16 x 32 blocks (rows and columns told apart), q_proj, kv_b heads that
                          start inside blocks, experts 24 wide (a partial block each way)
  qwen3_moe-fp8           Qwen3-30B-A3B-FP8's layout (128 x 128 blocks, modules_to_not_convert naming
                          the routers) over hidden 160 and experts 48 wide (partial blocks), QK norm,
                          one dense layer (mlp_only_layers); biases and norms bf16
  glm4_moe-fp8            GLM-4.5-Air-FP8's layout: q/k/v biases (bf16), partial RoPE, sigmoid
                          groups with a correction bias, a shared expert, one dense layer
Run: python3 tests/reference/make_hf_fp8_fixtures.py [NAME ...]  (torch, transformers, safetensors;
no NAME: all of them)
"""
import sys
import json
import math
import pathlib
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight

from make_hf_fixtures import NEW_TOKENS, PROMPT, ROOT, spread_weights

FP8_MAX = 448.0
QUANTISED = ("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.", "self_attn.q_a_proj.", "self_attn.q_b_proj.",
             "self_attn.kv_a_proj_with_mqa.", "self_attn.kv_b_proj.", "self_attn.o_proj.", "gate_proj.", "up_proj.",
             "down_proj.")


def quantize_fp8(w, block):
    """w: f32 [rows, cols] -> (float8_e4m3fn [rows, cols], f32 scales [ceil(rows/br), ceil(cols/bc)])."""
    rows, cols = w.shape
    br, bc = block
    gr, gc = math.ceil(rows / br), math.ceil(cols / bc)
    padded = torch.zeros(gr * br, gc * bc)
    padded[:rows, :cols] = w
    blocks = padded.view(gr, br, gc, bc)
    amax = blocks.abs().amax(dim=(1, 3))
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    q = (blocks / scale[:, None, :, None]).to(torch.float8_e4m3fn).view(gr * br, gc * bc)[:rows, :cols].contiguous()
    return q, scale.float().contiguous()


def dequantize_fp8(q, scale, block):
    """transformers' dequantisation, checked against the one-multiply formula element by element."""
    dq = _dequantize_fp8_weight(q, scale, list(block), torch.float32)
    rows, cols = q.shape
    r = torch.arange(rows)[:, None] // block[0]
    c = torch.arange(cols)[None, :] // block[1]
    assert torch.equal(dq, q.float() * scale[r, c]), "transformers' FP8 dequantisation is not value x block scale"
    return dq


def quantised(name):
    return name.startswith("model.layers.") and name.endswith(".weight") and any(p in name for p in QUANTISED)


def write_fp8_fixture(name, model, block, not_converted=None):
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.safetensors*"):
        f.unlink()
    model.to(torch.float32).save_pretrained(out)
    path = out / "model.safetensors"
    tensors = load_file(str(path))
    reference, stored = {}, {}
    for key, t in tensors.items():
        if quantised(key):
            q, s = quantize_fp8(t.float(), block)
            reference[key] = dequantize_fp8(q, s, block)
            stored[key] = q
            stored[key.removesuffix(".weight") + ".weight_scale_inv"] = s
        else:
            stored[key] = t.to(torch.bfloat16)
            reference[key] = stored[key].float()
    save_file(reference, str(path), metadata={"format": "pt"})
    ref = type(model).from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    with tempfile.TemporaryDirectory() as tmp:  # transformers holds exactly the weights the fixture stores
        ref.save_pretrained(tmp)
        held = load_file(str(pathlib.Path(tmp) / "model.safetensors"))
        assert held.keys() == reference.keys() and all(torch.equal(held[k], reference[k]) for k in held)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = ref(ids).logits[0].float().contiguous()
        generated = ref.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True,
                                 eos_token_id=None, pad_token_id=0)[0, len(PROMPT):].tolist()
    save_file(stored, str(path), metadata={"format": "pt"})
    save_file({"logits": logits}, str(out / "expected.safetensors"))
    config = json.loads((out / "config.json").read_text())
    config["dtype"] = "bfloat16"
    config["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                     "weight_block_size": list(block)}
    if not_converted:  # as Qwen3's FP8 releases list the modules they keep in bf16
        config["quantization_config"]["modules_to_not_convert"] = not_converted
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "expected.json").write_text(json.dumps({
        "prompt": PROMPT, "generated": generated,
        "transformers": transformers.__version__, "torch": torch.__version__,
        "note": f"f32 reference over the dequantised FP8 weights (blocks {block[0]} x {block[1]}), eager attention; "
                "see tests/reference/make_hf_fp8_fixtures.py",
    }, indent=1) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)
    n = sum(1 for k in stored if k.endswith("weight_scale_inv"))
    print(f"{name}: {sum(f.stat().st_size for f in out.iterdir())} bytes, {n} FP8 matrices, generated {generated}")


def correction_bias(model, experts, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.copy_(0.1 * torch.randn(experts, generator=g))


def deepseek_v3_fixtures():
    torch.manual_seed(0)
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    released = DeepseekV3Config(vocab_size=256, hidden_size=160, num_hidden_layers=3, num_attention_heads=6,
                                num_key_value_heads=6, max_position_embeddings=128, rms_norm_eps=1e-5,
                                tie_word_embeddings=False, q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
                                qk_rope_head_dim=8, v_head_dim=12, intermediate_size=136, moe_intermediate_size=32,
                                n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
                                n_group=2, topk_group=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    m = DeepseekV3ForCausalLM(released)
    spread_weights(m, 31)
    correction_bias(m, 4, 131)
    write_fp8_fixture("deepseek_v3-fp8", m, (128, 128))

    blocks = DeepseekV3Config(vocab_size=256, hidden_size=72, num_hidden_layers=3, num_attention_heads=4,
                              num_key_value_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5,
                              tie_word_embeddings=False, q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=16,
                              qk_rope_head_dim=8, v_head_dim=12, intermediate_size=40, moe_intermediate_size=24,
                              n_routed_experts=5, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1,
                              n_group=1, topk_group=1, routed_scaling_factor=1.5, norm_topk_prob=False,
                              rope_interleave=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    m = DeepseekV3ForCausalLM(blocks)
    spread_weights(m, 32)
    correction_bias(m, 5, 132)
    write_fp8_fixture("deepseek_v3-fp8-blocks", m, (16, 32))


def qwen3_moe_fixture():
    torch.manual_seed(0)
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    config = Qwen3MoeConfig(vocab_size=256, hidden_size=160, num_hidden_layers=3, num_attention_heads=4,
                            num_key_value_heads=2, head_dim=40, max_position_embeddings=128, rms_norm_eps=1e-6,
                            tie_word_embeddings=False, intermediate_size=136, moe_intermediate_size=48, num_experts=6,
                            num_experts_per_tok=3, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[1],
                            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    m = Qwen3MoeForCausalLM(config)
    spread_weights(m, 33)
    write_fp8_fixture("qwen3_moe-fp8", m, (128, 128),
                      not_converted=["lm_head"] + [f"model.layers.{i}.mlp.gate" for i in (0, 2)])


def glm4_moe_fixture():
    torch.manual_seed(0)
    from transformers import Glm4MoeConfig, Glm4MoeForCausalLM

    config = Glm4MoeConfig(vocab_size=256, hidden_size=160, num_hidden_layers=3, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=40, max_position_embeddings=128, rms_norm_eps=1e-5,
                           tie_word_embeddings=False, intermediate_size=136, moe_intermediate_size=48, attention_bias=True,
                           n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=1, first_k_dense_replace=1,
                           n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=1.8, use_qk_norm=True,
                           partial_rotary_factor=0.5,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})
    m = Glm4MoeForCausalLM(config)
    spread_weights(m, 34)
    correction_bias(m, 8, 134)
    write_fp8_fixture("glm4_moe-fp8", m, (128, 128))


FIXTURES = {"deepseek_v3-fp8": deepseek_v3_fixtures, "deepseek_v3-fp8-blocks": deepseek_v3_fixtures,
            "qwen3_moe-fp8": qwen3_moe_fixture, "glm4_moe-fp8": glm4_moe_fixture}


def main(names):
    for make in dict.fromkeys(FIXTURES[n] for n in (names or FIXTURES)):  # each maker once, in order
        make()


if __name__ == "__main__":
    main(sys.argv[1:])
