"""DeepSeek-MoE (v1, the 16B architecture) in plain PyTorch, written from its description: Llama
attention and RMSNorm, the first `first_k_dense_replace` layers dense, then every
`moe_layer_freq`-th layer an MoE with `n_routed_experts` SwiGLU experts chosen by softmax
top-k (divided by sum + 1e-20 when norm_topk_prob and top_k > 1) plus `n_shared_experts` fused
into one ungated SwiGLU of width moe_intermediate_size * n_shared_experts. Tensor names follow
the released checkpoints (model_type "deepseek").

Checked against transformers by make_hf_fixtures.py: with no shared experts and no dense
layers it must equal MixtralForCausalLM on the same weights.
"""
import torch
import torch.nn.functional as F

from llama_parts import RandomWeights, attention, rms_norm, rope, swiglu


def forward(config, p, ids):
    """Logits [len(ids), vocab] in f32 for one sequence (no cache: full causal attention)."""
    H, nh, nkv = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    eps = config["rms_norm_eps"]
    cos, sin = rope(len(ids), H // nh, config["rope_theta"])
    x = p["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(config["num_hidden_layers"]):
        a = f"model.layers.{l}."
        h = rms_norm(x, p[a + "input_layernorm.weight"], eps)
        att = attention(h, p[a + "self_attn.q_proj.weight"], p[a + "self_attn.k_proj.weight"],
                        p[a + "self_attn.v_proj.weight"], nh, nkv, cos, sin)
        x = x + F.linear(att, p[a + "self_attn.o_proj.weight"])
        h = rms_norm(x, p[a + "post_attention_layernorm.weight"], eps)
        sparse = (config["n_routed_experts"] and l >= config["first_k_dense_replace"]
                  and l % config["moe_layer_freq"] == 0)
        if not sparse:
            x = x + swiglu(h, p, a + "mlp.")
            continue
        scores = F.linear(h, p[a + "mlp.gate.weight"]).float().softmax(dim=-1)
        w, idx = torch.topk(scores, config["num_experts_per_tok"], dim=-1, sorted=False)
        if config["num_experts_per_tok"] > 1 and config["norm_topk_prob"]:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        y = torch.zeros_like(h)
        for e in range(config["n_routed_experts"]):
            rows, slot = torch.where(idx == e)
            if len(rows):
                y[rows] += swiglu(h[rows], p, a + f"mlp.experts.{e}.") * w[rows, slot, None]
        if config["n_shared_experts"]:
            y = y + swiglu(h, p, a + "mlp.shared_experts.")
        x = x + y
    x = rms_norm(x, p["model.norm.weight"], eps)
    return F.linear(x, p["lm_head.weight"])


def random_weights(config, seed):
    """Tensors with the released names, at a scale where routing is far from uniform."""
    H, V, L = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * (H // config["num_attention_heads"])
    p = RandomWeights(seed)
    p.llama_ends(V, H)
    for l in range(L):
        a = f"model.layers.{l}."
        p.llama_attention(a, H, kv)
        if l < config["first_k_dense_replace"] or l % config["moe_layer_freq"]:
            p.swiglu(a + "mlp.", config["intermediate_size"], H)
            continue
        p.mat(a + "mlp.gate.weight", config["n_routed_experts"], H)
        for e in range(config["n_routed_experts"]):
            p.swiglu(a + f"mlp.experts.{e}.", config["moe_intermediate_size"], H)
        if config["n_shared_experts"]:
            p.swiglu(a + "mlp.shared_experts.", config["moe_intermediate_size"] * config["n_shared_experts"], H)
    return dict(p)
