"""BAM (Branch-Attend-Mix, arXiv 2408.08274) in plain PyTorch, written from the paper: a Llama
decoder whose blocks are parallel, y = x + MoA(norm(x)) + MoE(norm(x)), with one RMSNorm.

- MoA: `num_attention_experts` attention experts under soft routing: every expert runs and the
  outputs are summed weighted by softmax(router(norm(x))) in f32. Expert-KV: each expert has its
  own q, k, v, o projections (and so its own KV cache); Shared-KV: the experts share one k and v
  projection (one KV cache) and keep their own q and o.
- MoE: SwiGLU FFN experts, top-k (1 by default) by softmax probability, each output weighted by
  its probability p (not renormalised).
Tensor names (our convention, docs/MODEL_CONFIGS.md): Llama's, with attention experts under
`self_attn.experts.{a}.` and the router at `self_attn.router`, FFN experts under `mlp.experts.{e}.`
and their router at `mlp.gate`.
"""
import torch
import torch.nn.functional as F

from llama_parts import RandomWeights, attention, rms_norm, rope, swiglu


def forward(config, p, ids):
    H, nh, nkv = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    hd, A, E = H // nh, config["num_attention_experts"], config["num_experts"]
    shared = config["attention_kv"] == "shared"
    eps = config["rms_norm_eps"]
    cos, sin = rope(len(ids), hd, config["rope_theta"])
    x = p["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(config["num_hidden_layers"]):
        a = f"model.layers.{l}."
        h = rms_norm(x, p[a + "input_layernorm.weight"], eps)
        wa = torch.softmax(F.linear(h, p[a + "self_attn.router.weight"]).float(), dim=-1)
        attn = torch.zeros_like(h)
        for e in range(A):
            q_ = a + f"self_attn.experts.{e}."
            kv_ = a + "self_attn." if shared else q_
            o = attention(h, p[q_ + "q_proj.weight"], p[kv_ + "k_proj.weight"], p[kv_ + "v_proj.weight"], nh, nkv,
                          cos, sin)
            attn = attn + F.linear(o, p[q_ + "o_proj.weight"]) * wa[:, e:e + 1]
        probs = torch.softmax(F.linear(h, p[a + "mlp.gate.weight"]).float(), dim=-1)
        w, idx = torch.topk(probs, config.get("num_experts_per_tok", 1), dim=-1)
        moe = torch.zeros_like(h)
        for e in range(E):
            rows, slot = torch.where(idx == e)
            if len(rows):
                moe[rows] += swiglu(h[rows], p, a + f"mlp.experts.{e}.") * w[rows, slot, None]
        x = x + attn + moe
    x = rms_norm(x, p["model.norm.weight"], eps)
    return F.linear(x, p["lm_head.weight"])


def random_weights(config, seed):
    H, V, L = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    A, E, I = config["num_attention_experts"], config["num_experts"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * (H // config["num_attention_heads"])
    shared = config["attention_kv"] == "shared"
    p = RandomWeights(seed)
    mat = p.mat
    p.llama_ends(V, H)
    for l in range(L):
        a = f"model.layers.{l}."
        p.norm(a + "input_layernorm.weight", H)
        mat(a + "self_attn.router.weight", A, H, 2.0)
        if shared:
            mat(a + "self_attn.k_proj.weight", kv, H)
            mat(a + "self_attn.v_proj.weight", kv, H)
        for e in range(A):
            q = a + f"self_attn.experts.{e}."
            mat(q + "q_proj.weight", H, H)
            mat(q + "o_proj.weight", H, H)
            if not shared:
                mat(q + "k_proj.weight", kv, H)
                mat(q + "v_proj.weight", kv, H)
        mat(a + "mlp.gate.weight", E, H, 3.0)
        for e in range(E):
            p.swiglu(a + f"mlp.experts.{e}.", I, H)
    return dict(p)
