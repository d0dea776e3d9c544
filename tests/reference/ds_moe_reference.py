"""DS-MoE (arXiv 2404.05567) in plain PyTorch, written from the paper and the structure of its
public implementation (dense_moe in IBM/dolomite-engine): GPT-style pre-norm blocks with
LayerNorm and biases, learned absolute positions, tied embeddings.

- Attention experts: A experts (num_attention_experts, default E) over H query heads and H/A
  key/value heads; head h = kv*A + e belongs to expert e and reads KV head kv. A linear router (no bias) on the block's normalised
  input gives f32 softmax probabilities p, masked by the inference method (top-k: keep the k
  largest; threshold t: drop p < t; none: dense) and not renormalised; each head's output is
  multiplied by its expert's p before the output projection (c_proj, with bias).
- MLP experts: c_fc [E*I, H] + bias, GeLU (tanh), the activation of expert e (rows e*I..) times
  its p, then c_proj [H, E*I] + one bias.
"""
import math

import torch
import torch.nn.functional as F

from llama_parts import RandomWeights


def mask(p, method):
    if method is None:
        return p
    if "threshold" in method:
        return p.masked_fill(p < method["threshold"], 0)
    top, idx = p.topk(method["top_k"], dim=-1)
    return torch.zeros_like(p).scatter(-1, idx, top)


def route(gate_w, x, method):
    return mask(torch.softmax(F.linear(x, gate_w).float(), dim=-1), method)


def forward(config, p, ids, method):
    """Logits [len(ids), vocab] in f32 (full causal attention, no cache)."""
    H, nh, E = config["n_embd"], config["n_head"], config["num_experts"]
    A = config.get("num_attention_experts", E)
    hd, kvh, I = H // nh, nh // A, config["n_inner"]
    eps = config.get("layer_norm_epsilon", 1e-5)
    n = len(ids)
    x = p["transformer.wte.weight"][torch.tensor(ids)] + p["transformer.wpe.weight"][:n]
    causal = torch.full((n, n), float("-inf")).triu(1)
    for l in range(config["n_layer"]):
        a = f"transformer.h.{l}."
        h = F.layer_norm(x, (H,), p[a + "ln_1.weight"], p[a + "ln_1.bias"], eps)
        qkv = F.linear(h, p[a + "attn.c_attn.weight"], p[a + "attn.c_attn.bias"])
        q = qkv[:, :H].view(n, nh, hd).transpose(0, 1)
        k = qkv[:, H:H + kvh * hd].view(n, kvh, hd).transpose(0, 1)
        v = qkv[:, H + kvh * hd:].view(n, kvh, hd).transpose(0, 1)
        k, v = k.repeat_interleave(nh // kvh, 0), v.repeat_interleave(nh // kvh, 0)
        heads = (torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + causal, dim=-1) @ v).transpose(0, 1)
        w = route(p[a + "attn.gate.weight"], h, method)  # [n, A]
        heads = (heads.reshape(n, kvh, A, hd) * w[:, None, :, None]).reshape(n, H)
        x = x + F.linear(heads, p[a + "attn.c_proj.weight"], p[a + "attn.c_proj.bias"])
        h = F.layer_norm(x, (H,), p[a + "ln_2.weight"], p[a + "ln_2.bias"], eps)
        w = route(p[a + "mlp.gate.weight"], h, method)
        act = F.gelu(F.linear(h, p[a + "mlp.c_fc.weight"], p[a + "mlp.c_fc.bias"]), approximate="tanh")
        act = act * w.repeat_interleave(I, dim=-1)
        x = x + F.linear(act, p[a + "mlp.c_proj.weight"], p[a + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (H,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    return F.linear(x, p["transformer.wte.weight"])


def random_weights(config, seed):
    H, V, E, I = config["n_embd"], config["vocab_size"], config["num_experts"], config["n_inner"]
    A = config.get("num_attention_experts", E)
    kv = (config["n_head"] // A) * (H // config["n_head"])
    p = RandomWeights(seed)
    mat, vec = p.mat, p.vec

    mat("transformer.wte.weight", V, H, H ** 0.5 * 0.5)
    mat("transformer.wpe.weight", config["n_positions"], H, H ** 0.5 * 0.1)
    for l in range(config["n_layer"]):
        a = f"transformer.h.{l}."
        for ln in ("ln_1", "ln_2"):
            vec(a + ln + ".weight", H, 1.0, 0.2)
            vec(a + ln + ".bias", H)
        mat(a + "attn.c_attn.weight", H + 2 * kv, H)
        vec(a + "attn.c_attn.bias", H + 2 * kv)
        mat(a + "attn.c_proj.weight", H, H)
        vec(a + "attn.c_proj.bias", H)
        mat(a + "attn.gate.weight", A, H, 3.0)
        mat(a + "mlp.c_fc.weight", E * I, H)
        vec(a + "mlp.c_fc.bias", E * I)
        mat(a + "mlp.c_proj.weight", H, E * I)
        vec(a + "mlp.c_proj.bias", H)
        mat(a + "mlp.gate.weight", E, H, 3.0)
    vec("transformer.ln_f.weight", H, 1.0, 0.2)
    vec("transformer.ln_f.bias", H)
    return dict(p)
