"""The trainable models, batched, in the tensor layouts the engine reads (docs/MODEL_CONFIGS.md).

- `DsMoe`: DS-MoE (arXiv 2404.05567) in the `ds_moe` layout: GPT-style pre-norm blocks with
  LayerNorm and biases, RoPE, tied embeddings; a Mixture of Attention heads (expert e owns query
  heads kv*E + e and reads shared K/V head kv) and GeLU MLP experts, both weighted by an f32
  softmax router that is not renormalised. Trained dense (every expert), with the paper's mutual
  information loss on every router.
- `ParallelMoe`: the `bam` layout: a Llama decoder (RMSNorm, RoPE, SwiGLU) with parallel blocks
  y = x + MoA(norm(x)) + MoE(norm(x)). One attention expert and one FFN expert is a plain dense
  parallel transformer (the seed and its domain branches); several attention experts under soft
  routing with top-k FFN experts is BAM; one attention and several FFN experts is FFN-only
  upcycling (BTX).
Each model's `config` is the config.json the engine loads.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(n, head_dim, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.arange(n).float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x [B, heads, T, hd]; the rotate-half convention of transformers' Llama."""
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), dim=-1) * sin


def causal_attention(q, k, v):
    """q [B, hq, T, hd], k/v [B, hkv, T, hd] -> [B, T, hq * hd]."""
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return out.transpose(1, 2).flatten(2)


def mutual_information_loss(p):
    """DS-MoE's MI loss for router probabilities p [..., E]: -H(mean p) + mean H(p). Low when the
    experts are used evenly over the batch (high marginal entropy) and each token is confident
    (low conditional entropy)."""
    p = p.reshape(-1, p.shape[-1]).float()
    marginal = p.mean(0)
    h_marginal = -(marginal * (marginal + 1e-9).log()).sum()
    h_conditional = -(p * (p + 1e-9).log()).sum(-1).mean()
    return -h_marginal + h_conditional


def load_balancing_loss(p, idx, num_experts):
    """Switch Transformer's auxiliary loss: E * sum_e (fraction of tokens routed to e) * (mean p_e)."""
    p = p.reshape(-1, num_experts).float()
    counts = F.one_hot(idx.reshape(-1, idx.shape[-1]), num_experts).sum(1).float()
    return num_experts * (counts.mean(0) / idx.shape[-1] * p.mean(0)).sum()


def routing_mask(p, routing):
    """The DS-MoE inference methods on softmax probabilities p: None is dense; ("top_k", K);
    ("threshold", eps): expert e is active when p_e * E > eps. Not renormalised."""
    if routing is None:
        return p
    kind, value = routing
    if kind == "top_k":
        top, idx = p.topk(value, dim=-1)
        return torch.zeros_like(p).scatter(-1, idx, top)
    return p.masked_fill(p * p.shape[-1] <= value, 0)


class DsMoeBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, nh, E, I = c["n_embd"], c["n_head"], c["num_experts"], c["n_inner"]
        self.A = c.get("num_attention_experts", E)  # attention experts; E MLP experts
        self.E, self.nh, self.hd, self.I = E, nh, H // nh, I
        self.kvh = nh // self.A
        self.ln_1 = nn.LayerNorm(H, eps=c["layer_norm_epsilon"])
        self.c_attn = nn.Linear(H, H + 2 * self.kvh * self.hd)
        self.attn_gate = nn.Linear(H, self.A, bias=False)
        self.attn_proj = nn.Linear(H, H)
        self.ln_2 = nn.LayerNorm(H, eps=c["layer_norm_epsilon"])
        self.mlp_gate = nn.Linear(H, E, bias=False)
        self.c_fc = nn.Linear(H, E * I)
        self.mlp_proj = nn.Linear(E * I, H)

    def forward(self, x, cos, sin, routing, routers):
        B, T, H = x.shape
        h = self.ln_1(x)
        qkv = self.c_attn(h)
        kv = self.kvh * self.hd
        q = qkv[..., :H].view(B, T, self.nh, self.hd).transpose(1, 2)
        k = qkv[..., H:H + kv].view(B, T, self.kvh, self.hd).transpose(1, 2)
        v = qkv[..., H + kv:].view(B, T, self.kvh, self.hd).transpose(1, 2)
        heads = causal_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
        p = torch.softmax(self.attn_gate(h).float(), dim=-1)
        routers.append(p)
        w = routing_mask(p, routing)
        heads = (heads.view(B, T, self.kvh, self.A, self.hd) * w[:, :, None, :, None]).view(B, T, H)
        x = x + self.attn_proj(heads)
        h = self.ln_2(x)
        p = torch.softmax(self.mlp_gate(h).float(), dim=-1)
        routers.append(p)
        w = routing_mask(p, routing)
        act = F.gelu(self.c_fc(h), approximate="tanh").view(B, T, self.E, self.I) * w[..., None]
        return x + self.mlp_proj(act.view(B, T, self.E * self.I))


class DsMoe(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.blocks = nn.ModuleList(DsMoeBlock(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        nn.init.normal_(self.wte.weight, std=0.02)

    def forward(self, ids, routing=None):
        """Logits [B, T, V] and the routers' probabilities (for the MI loss)."""
        c = self.config
        cos, sin = (t.to(ids.device) for t in rope_tables(ids.shape[1], c["n_embd"] // c["n_head"], c["rope_theta"]))
        x, routers = self.wte(ids), []
        for block in self.blocks:
            x = block(x, cos, sin, routing, routers)
        return F.linear(self.ln_f(x), self.wte.weight), routers

    def tensors(self):
        """The engine's tensor names (tests/reference/ds_moe_reference.py)."""
        out = {"transformer.wte.weight": self.wte.weight, "transformer.ln_f.weight": self.ln_f.weight,
               "transformer.ln_f.bias": self.ln_f.bias}
        for l, b in enumerate(self.blocks):
            a = f"transformer.h.{l}."
            out.update({a + "ln_1.weight": b.ln_1.weight, a + "ln_1.bias": b.ln_1.bias,
                        a + "attn.c_attn.weight": b.c_attn.weight, a + "attn.c_attn.bias": b.c_attn.bias,
                        a + "attn.c_proj.weight": b.attn_proj.weight, a + "attn.c_proj.bias": b.attn_proj.bias,
                        a + "attn.gate.weight": b.attn_gate.weight, a + "ln_2.weight": b.ln_2.weight,
                        a + "ln_2.bias": b.ln_2.bias, a + "mlp.c_fc.weight": b.c_fc.weight,
                        a + "mlp.c_fc.bias": b.c_fc.bias, a + "mlp.c_proj.weight": b.mlp_proj.weight,
                        a + "mlp.c_proj.bias": b.mlp_proj.bias, a + "mlp.gate.weight": b.mlp_gate.weight})
        return out


class Attention(nn.Module):
    """One attention expert with its own q, k, v, o (Expert-KV)."""

    def __init__(self, c):
        super().__init__()
        H, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.nh, self.nkv, self.hd = nh, nkv, H // nh
        self.q_proj = nn.Linear(H, H, bias=False)
        self.k_proj = nn.Linear(H, nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(H, nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(H, H, bias=False)

    def forward(self, h, cos, sin):
        B, T, _ = h.shape
        q = self.q_proj(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        return self.o_proj(causal_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v))


class SwiGlu(nn.Module):
    def __init__(self, H, I):
        super().__init__()
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ParallelBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        self.input_layernorm = nn.RMSNorm(H, eps=c["rms_norm_eps"])
        self.attn_experts = nn.ModuleList(Attention(c) for _ in range(c["num_attention_experts"]))
        self.attn_router = nn.Linear(H, c["num_attention_experts"], bias=False)
        self.experts = nn.ModuleList(SwiGlu(H, c["intermediate_size"]) for _ in range(c["num_experts"]))
        self.gate = nn.Linear(H, c["num_experts"], bias=False)
        self.top_k = c["num_experts_per_tok"]

    def forward(self, x, cos, sin, aux):
        h = self.input_layernorm(x)
        if len(self.attn_experts) == 1:  # softmax over one expert is 1
            attn = self.attn_experts[0](h, cos, sin)
        else:
            wa = torch.softmax(self.attn_router(h).float(), dim=-1)
            attn = sum(e(h, cos, sin) * wa[..., i:i + 1] for i, e in enumerate(self.attn_experts))
        if len(self.experts) == 1:
            return x + attn + self.experts[0](h)
        p = torch.softmax(self.gate(h).float(), dim=-1)
        w, idx = p.topk(self.top_k, dim=-1)
        aux.append(load_balancing_loss(p, idx, len(self.experts)))
        flat, moe = h.reshape(-1, h.shape[-1]), torch.zeros_like(h).reshape(-1, h.shape[-1])
        w, idx = w.reshape(-1, self.top_k), idx.reshape(-1, self.top_k)
        for e, expert in enumerate(self.experts):
            rows, slot = torch.where(idx == e)
            if len(rows):
                moe = moe.index_add(0, rows, expert(flat[rows]) * w[rows, slot, None])
        return x + attn + moe.view_as(h)


class TiedDecoder(nn.Module):
    """Embeddings, a stack of `block` layers with RoPE, a final RMSNorm and the tied LM head."""

    def __init__(self, config, block):
        super().__init__()
        self.config = c = config
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = nn.RMSNorm(c["hidden_size"], eps=c["rms_norm_eps"])
        nn.init.normal_(self.embed_tokens.weight, std=0.02)

    def forward(self, ids, routing=None):
        """Logits [B, T, V] and the routers' load-balancing losses."""
        c = self.config
        cos, sin = (t.to(ids.device) for t in
                    rope_tables(ids.shape[1], c["hidden_size"] // c["num_attention_heads"], c["rope_theta"]))
        x, aux = self.embed_tokens(ids), []
        for layer in self.layers:
            x = layer(x, cos, sin, aux)
        return F.linear(self.norm(x), self.embed_tokens.weight), aux


class ParallelMoe(TiedDecoder):
    def __init__(self, config):
        super().__init__(config, ParallelBlock)

    def tensors(self):
        """The engine's `bam` tensor names (tests/reference/bam_reference.py), Expert-KV."""
        out = {"model.embed_tokens.weight": self.embed_tokens.weight, "model.norm.weight": self.norm.weight}
        for l, layer in enumerate(self.layers):
            a = f"model.layers.{l}."
            out[a + "input_layernorm.weight"] = layer.input_layernorm.weight
            out[a + "self_attn.router.weight"] = layer.attn_router.weight
            for i, e in enumerate(layer.attn_experts):
                for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                    out[a + f"self_attn.experts.{i}.{name}.weight"] = getattr(e, name).weight
            out[a + "mlp.gate.weight"] = layer.gate.weight
            for i, e in enumerate(layer.experts):
                for name in ("gate_proj", "up_proj", "down_proj"):
                    out[a + f"mlp.experts.{i}.{name}.weight"] = getattr(e, name).weight
        return out


def ds_moe_config(vocab_size, **overrides):
    c = {"model_type": "ds_moe", "vocab_size": vocab_size, "n_embd": 128, "n_layer": 4, "n_head": 8,
         "num_experts": 4, "n_inner": 128, "n_positions": 1024, "layer_norm_epsilon": 1e-5,
         "position_embedding_type": "rope", "rope_theta": 10000.0, "tie_word_embeddings": True,
         "add_bias": True, "activation_function": "gelu_pytorch_tanh", "bos_token_id": 0, "eos_token_id": 0,
         # sparse inference by default: keep experts with p >= 1/8 (threshold:0.5 for 4 experts;
         # docs/RESULTS.md: 54% of the non-embedding parameters within 5% of dense perplexity)
         "inference_method": {"threshold": 0.125}}
    c.update(overrides)
    return c


def parallel_config(vocab_size, attention_experts=1, experts=1, **overrides):
    c = {"model_type": "bam", "vocab_size": vocab_size, "hidden_size": 128, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 256, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "max_position_embeddings": 1024, "tie_word_embeddings": True,
         "num_attention_experts": attention_experts, "attention_kv": "expert", "num_experts": experts,
         "num_experts_per_tok": 1, "bos_token_id": 0, "eos_token_id": 0}
    c.update(overrides)
    return c


class MixtralBlock(nn.Module):
    """transformers' Mixtral decoder layer: x += attn(norm(x)); x += MoE(norm(x)), the MoE a
    softmax router's top-k SwiGLU experts (w1 gate, w3 up, w2 down) renormalised over the k."""

    def __init__(self, c):
        super().__init__()
        H, E = c["hidden_size"], c["num_local_experts"]
        self.input_layernorm = nn.RMSNorm(H, eps=c["rms_norm_eps"])
        self.attn = Attention(c)
        self.post_attention_layernorm = nn.RMSNorm(H, eps=c["rms_norm_eps"])
        self.gate = nn.Linear(H, E, bias=False)
        # one module per expert: indexing a stacked [E, ...] parameter would make autograd fill a
        # full-size zero gradient per expert and layer (most of a step's time)
        self.experts = nn.ModuleList(SwiGlu(H, c["intermediate_size"]) for _ in range(E))
        self.E, self.top_k = E, c["num_experts_per_tok"]

    def forward(self, x, cos, sin, aux):
        x = x + self.attn(self.input_layernorm(x), cos, sin)
        h = self.post_attention_layernorm(x)
        p = torch.softmax(self.gate(h).float(), dim=-1)
        w, idx = p.topk(self.top_k, dim=-1)
        aux.append(load_balancing_loss(p, idx, self.E))
        w = (w / w.sum(-1, keepdim=True)).to(h.dtype)
        flat = h.reshape(-1, h.shape[-1])
        # one sort by expert, then each expert's rows as one contiguous slice
        order = idx.reshape(-1).argsort(stable=True)
        rows = order // self.top_k
        counts = torch.bincount(idx.reshape(-1), minlength=self.E).tolist()
        outs, begin = [], 0
        for e, n in enumerate(counts):
            xe = flat[rows[begin:begin + n]]
            outs.append(self.experts[e](xe))
            begin += n
        y = torch.cat(outs) * w.reshape(-1)[order, None]
        moe = torch.zeros_like(flat).index_add(0, rows, y)
        return x + moe.view_as(h)


class MixtralMoe(TiedDecoder):
    """A small Mixtral (model_type mixtral) with tied embeddings."""

    def __init__(self, config):
        super().__init__(config, MixtralBlock)

    def tensors(self):
        """transformers' Mixtral tensor names."""
        out = {"model.embed_tokens.weight": self.embed_tokens.weight, "model.norm.weight": self.norm.weight}
        for l, layer in enumerate(self.layers):
            a = f"model.layers.{l}."
            out[a + "input_layernorm.weight"] = layer.input_layernorm.weight
            out[a + "post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                out[a + f"self_attn.{name}.weight"] = getattr(layer.attn, name).weight
            out[a + "block_sparse_moe.gate.weight"] = layer.gate.weight
            for e, expert in enumerate(layer.experts):
                for name, linear in (("w1", expert.gate_proj), ("w2", expert.down_proj), ("w3", expert.up_proj)):
                    out[a + f"block_sparse_moe.experts.{e}.{name}.weight"] = linear.weight
        return out


def mixtral_config(vocab_size, **overrides):
    c = {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "vocab_size": vocab_size,
         "hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2,
         "intermediate_size": 96, "num_local_experts": 16, "num_experts_per_tok": 2, "hidden_act": "silu",
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 1024, "tie_word_embeddings": True,
         "router_aux_loss_coef": 0.02, "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16"}
    c.update(overrides)
    return c
