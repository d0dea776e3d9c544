#!/usr/bin/env python3
"""Tiny random gpt-oss checkpoints and the logits transformers computes for them (issue 19, item 4).
Same layout and reference as make_hf_fixtures.py, whose helpers it uses.

  gpt_oss        bf16 weights; sliding and full layers with a window (4) inside the prompt, YaRN with
                 the correction range truncated, a non-default swiglu_alpha and a swiglu_limit that
                 the expert activations cross
  gpt_oss-mxfp4  experts stored as released: *_blocks (uint8, two e2m1 values a byte, element 2j in
                 the low nibble) and *_scales (uint8 e8m0, one per 32 values of a row), [experts,
                 out, in / 32, 16] and [experts, out, in / 32]; quantized here per the OCP
                 microscaling spec, the reference computed by transformers on the dequantised
                 weights (exact in bf16); the release's rope (YaRN, factor 32, truncate false),
                 explicit layer_types, three of six experts a token

Run: python3 tests/reference/make_hf_gpt_oss_fixtures.py  (torch, transformers, safetensors)
"""
import json

import torch
from safetensors.torch import load_file, save_file

from make_hf_fixtures import ROOT, PROMPT, spread_weights, write_fixture

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def quantize_mxfp4(w):
    """w: [..., rows, cols] f32 with cols % 32 == 0 -> (blocks uint8 [..., rows, cols/32, 16],
    scales uint8 [..., rows, cols/32], the dequantised f32 values). The block's scale is
    2^(floor(log2(max |x|)) - 2) (e2m1's largest exponent is 2), each value rounded to the
    nearest e2m1 and clamped to +-6."""
    *prefix, rows, cols = w.shape
    x = w.reshape(*prefix, rows, cols // 32, 32)
    amax = x.abs().amax(dim=-1, keepdim=True).clamp(min=2.0 ** -120)
    exponent = torch.floor(torch.log2(amax)) - 2
    scaled = x / torch.exp2(exponent)
    mag = scaled.abs().clamp(max=6.0)
    # the nearest e2m1 magnitude (on a tie the lower code: ties do not occur with random weights)
    distance = (mag.unsqueeze(-1) - E2M1).abs()
    code = distance.argmin(dim=-1).to(torch.uint8)
    code = code | ((scaled < 0) & (code != 0)).to(torch.uint8) << 3
    dequantised = (E2M1[(code & 7).long()] * torch.where(code >= 8, -1.0, 1.0)) * torch.exp2(exponent)
    pairs = code.reshape(*prefix, rows, cols // 32, 16, 2)
    blocks = (pairs[..., 0] | (pairs[..., 1] << 4)).to(torch.uint8)
    scales = (exponent.squeeze(-1) + 127).to(torch.uint8)
    return blocks, scales, dequantised.reshape(w.shape)


def gpt_oss_weights(model, seed, gate_up_scale=1.0):
    """spread_weights, with sinks and router biases large enough to matter."""
    spread_weights(model, seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.copy_(torch.randn(layer.self_attn.sinks.shape, generator=g))
            layer.mlp.router.bias.copy_(0.5 * torch.randn(layer.mlp.router.bias.shape, generator=g))
            layer.mlp.experts.gate_up_proj.mul_(gate_up_scale)


def to_mxfp4(name, model):
    """Replaces the fixture's expert matrices by their MXFP4 form in the released layout and names."""
    out = ROOT / name
    path = out / "model.safetensors"
    tensors = load_file(str(path))
    for l in range(model.config.num_hidden_layers):
        p = f"model.layers.{l}.mlp.experts."
        for proj in ("gate_up_proj", "down_proj"):
            w = tensors.pop(p + proj).float().transpose(1, 2).contiguous()  # [E, out, in]
            blocks, scales, dq = quantize_mxfp4(w)
            assert torch.equal(dq, w), f"{proj}: the weights were not MXFP4 values"
            tensors[p + proj + "_blocks"] = blocks.contiguous()
            tensors[p + proj + "_scales"] = scales.contiguous()
    save_file(tensors, str(path), metadata={"format": "pt"})
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                                   "lm_head"]}
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {sum(f.stat().st_size for f in out.iterdir())} bytes with MXFP4 experts")


def check_with_transformers_dequantisation(name):
    """transformers' own MXFP4 reader (dequantize=True), where it runs on this machine, must give
    the reference's logits: it checks the packing, not only the engine."""
    from transformers import GptOssForCausalLM, Mxfp4Config
    out = ROOT / name
    try:
        m = GptOssForCausalLM.from_pretrained(out, quantization_config=Mxfp4Config(dequantize=True),
                                              dtype=torch.float32, attn_implementation="eager").eval()
    except Exception as e:  # noqa: BLE001 (a missing kernel or accelerator)
        print(f"{name}: transformers' MXFP4 dequantisation did not run here ({type(e).__name__}: {e})")
        return
    with torch.no_grad():
        logits = m(torch.tensor([PROMPT])).logits[0].float()
    expected = load_file(str(out / "expected.safetensors"))["logits"]
    diff = (logits - expected).abs().max().item()
    print(f"{name}: transformers' own MXFP4 dequantisation gives max |diff| {diff:.3g}")
    assert diff <= 1e-5 * expected.abs().max().item(), diff


def main():
    torch.manual_seed(0)
    from transformers import GptOssConfig, GptOssForCausalLM

    base = GptOssConfig(vocab_size=256, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=16, intermediate_size=32, num_local_experts=6,
                        num_experts_per_tok=2, sliding_window=4, max_position_embeddings=128, rms_norm_eps=1e-5,
                        swiglu_alpha=1.5, swiglu_limit=2.0, tie_word_embeddings=False,
                        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                         "original_max_position_embeddings": 32, "beta_fast": 32.0,
                                         "beta_slow": 1.0})
    m = GptOssForCausalLM(base)
    gpt_oss_weights(m, 41)
    write_fixture("gpt_oss", m)

    mx = GptOssConfig(vocab_size=256, hidden_size=96, num_hidden_layers=3, num_attention_heads=6,
                      num_key_value_heads=2, head_dim=16, intermediate_size=64, num_local_experts=6,
                      num_experts_per_tok=3, sliding_window=3, max_position_embeddings=131072, rms_norm_eps=1e-5,
                      tie_word_embeddings=False,
                      layer_types=["full_attention", "sliding_attention", "sliding_attention"])
    m = GptOssForCausalLM(mx)
    gpt_oss_weights(m, 42, gate_up_scale=4.0)  # activations past swiglu_limit (7)
    with torch.no_grad():
        for layer in m.model.layers:
            for proj in ("gate_up_proj", "down_proj"):
                p = getattr(layer.mlp.experts, proj)
                _, _, dq = quantize_mxfp4(p.data.transpose(1, 2).contiguous())
                p.copy_(dq.transpose(1, 2))
    write_fixture("gpt_oss-mxfp4", m)
    to_mxfp4("gpt_oss-mxfp4", m)
    check_with_transformers_dequantisation("gpt_oss-mxfp4")


if __name__ == "__main__":
    main()
