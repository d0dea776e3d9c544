"""MoE++ (arXiv 2410.07348) in plain PyTorch, written from the paper and the behaviour of the
released model (SkyworkAI/MoE-plus-plus), where the two differ:

- A Llama decoder (RMSNorm, RoPE, SwiGLU) whose every MLP is an MoE++ layer of `num_experts[0]`
  experts in this order: FFN experts, `num_constant_experts` constant experts, one copy expert,
  one zero expert (the last index).
- FFN experts keep gate and up fused: up_proj [2I, H], gate = first I rows, up = last I rows.
- Router: f32; `moe_2layer_gate` makes it Linear(H, 8E) -> tanh -> Linear(8E, E). From the
  second MoE layer on, the previous layer's logits pass through gate_map (E x E) and are added
  (the gating residual); the sum is what the next layer receives.
- Gating: softmax (of logits / (std(logits, unbiased) / moe_gate_norm_std) with
  moe_use_logits_norm), top-2, the zero expert's weight set to 0, then the pair renormalised.
  With moe_use_mixtral_gating: top-2 of the logits, softmax over the two.
- Unless moe_use_mixtral_gating or moe_feature_no_mul_topk, the experts see the input times
  top-k (2): a copy expert returns 2x, a constant expert softmax(W_c 2x) . [2x, v].
- Outputs are weighted and summed in expert order.
Tensor names follow the released checkpoints.
"""
import torch
import torch.nn.functional as F

from llama_parts import RandomWeights, attention, rms_norm, rope

TOP_K = 2


def layout(config):
    """(number of FFN experts, index of the first constant expert, copy index, zero index)."""
    E = config["num_experts"][0]
    c = config.get("num_constant_experts", 2)
    ffn = E - c - 2
    return ffn, ffn, ffn + c, ffn + c + 1


def router_logits(config, p, prefix, x, previous):
    if config.get("moe_2layer_gate", True):
        logits = F.linear(torch.tanh(F.linear(x, p[prefix + "wg.0.weight"])), p[prefix + "wg.2.weight"])
    else:
        logits = F.linear(x, p[prefix + "wg.weight"])
    if previous is not None:
        logits = logits + F.linear(previous, p[prefix + "gate_map.weight"])
    return logits


def gate(config, logits):
    """Per token: indices [n, 2] and weights [n, 2]."""
    E = logits.shape[-1]
    if config.get("moe_use_logits_norm", False):
        logits = logits / (logits.std(dim=-1, keepdim=True) / config.get("moe_gate_norm_std", 1.0))
    if config.get("moe_use_mixtral_gating", False):
        w, idx = torch.topk(logits, TOP_K, dim=-1)
        return idx, torch.softmax(w, dim=-1)
    w, idx = torch.topk(torch.softmax(logits, dim=-1), TOP_K, dim=-1)
    w = torch.where(idx == E - 1, torch.zeros_like(w), w)
    return idx, w / w.sum(dim=-1, keepdim=True)


def moe_layer(config, p, prefix, h, previous):
    """Returns (output, logits for the next layer)."""
    logits = router_logits(config, p, prefix + "gate.", h, previous)
    idx, w = gate(config, logits)
    scale = 1 if (config.get("moe_use_mixtral_gating", False) or config.get("moe_feature_no_mul_topk", False)) else TOP_K
    xs = h * scale
    ffn, constant, copy, zero = layout(config)
    I = config["intermediate_size"]
    y = torch.zeros_like(h)
    for e in range(config["num_experts"][0]):
        rows, slot = torch.where(idx == e)
        if not len(rows):
            continue
        x = xs[rows]
        q = prefix + f"experts.experts.{e}."
        if e < ffn:
            gu = F.linear(x, p[q + "up_proj.weight"])
            out = F.linear(F.silu(gu[:, :I]) * gu[:, I:], p[q + "down_proj.weight"])
        elif e < copy:
            a = torch.softmax(F.linear(x, p[q + "wg.weight"]), dim=-1)
            out = a[:, :1] * x + a[:, 1:] * p[q + "constant"]
        elif e == copy:
            out = x
        else:
            out = torch.zeros_like(x)
        y[rows] += out * w[rows, slot, None]
    return y, logits


def forward(config, p, ids):
    """Logits [len(ids), vocab] in f32 for one sequence (full causal attention, no cache)."""
    H, nh, nkv = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    eps = config["rms_norm_eps"]
    cos, sin = rope(len(ids), H // nh, config["rope_theta"])
    x = p["model.embed_tokens.weight"][torch.tensor(ids)]
    previous = None
    for l in range(config["num_hidden_layers"]):
        a = f"model.layers.{l}."
        h = rms_norm(x, p[a + "input_layernorm.weight"], eps)
        att = attention(h, p[a + "self_attn.q_proj.weight"], p[a + "self_attn.k_proj.weight"],
                        p[a + "self_attn.v_proj.weight"], nh, nkv, cos, sin)
        x = x + F.linear(att, p[a + "self_attn.o_proj.weight"])
        h = rms_norm(x, p[a + "post_attention_layernorm.weight"], eps)
        y, previous = moe_layer(config, p, a + "mlp.moe.", h, previous)
        x = x + y
    x = rms_norm(x, p["model.norm.weight"], eps)
    return F.linear(x, p["lm_head.weight"])


def random_weights(config, seed):
    """Tensors with the released names; routers scaled so that every kind of expert is chosen."""
    H, V, L = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    E, I = config["num_experts"][0], config["intermediate_size"]
    kv = config["num_key_value_heads"] * (H // config["num_attention_heads"])
    ffn, constant, copy, zero = layout(config)
    p = RandomWeights(seed)
    mat = p.mat
    p.llama_ends(V, H)
    for l in range(L):
        a = f"model.layers.{l}."
        p.llama_attention(a, H, kv)
        m = a + "mlp.moe."
        if config.get("moe_2layer_gate", True):
            mat(m + "gate.wg.0.weight", 8 * E, H, 2.0)
            mat(m + "gate.wg.2.weight", E, 8 * E, 3.0)
        else:
            mat(m + "gate.wg.weight", E, H, 3.0)
        mat(m + "gate.gate_map.weight", E, E, 0.5)
        for e in range(ffn):
            mat(m + f"experts.experts.{e}.up_proj.weight", 2 * I, H)
            mat(m + f"experts.experts.{e}.down_proj.weight", H, I)
        for e in range(constant, copy):
            p.vec(m + f"experts.experts.{e}.constant", H, 0.0, 1.0)
            mat(m + f"experts.experts.{e}.wg.weight", 2, H)
    return dict(p)
