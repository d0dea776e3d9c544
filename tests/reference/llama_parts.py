"""The Llama pieces the family references share: RMSNorm, RoPE, SwiGLU and causal grouped-query
attention, in f32 as transformers computes them (one sequence, no cache)."""
import math

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    v = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(v + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(n, head_dim, theta):
    """(cos, sin) [n, head_dim] for positions 0..n-1."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.arange(n).float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def swiglu(x, p, prefix):
    return F.linear(F.silu(F.linear(x, p[prefix + "gate_proj.weight"])) * F.linear(x, p[prefix + "up_proj.weight"]),
                    p[prefix + "down_proj.weight"])


def attention(h, q_w, k_w, v_w, n_heads, n_kv_heads, cos, sin):
    """Causal attention of h [n, H] with RoPE; heads concatenated [n, n_heads * head_dim], before o_proj."""
    n = h.shape[0]
    hd = q_w.shape[0] // n_heads
    q = F.linear(h, q_w).view(n, n_heads, hd).transpose(0, 1)
    k = F.linear(h, k_w).view(n, n_kv_heads, hd).transpose(0, 1)
    v = F.linear(h, v_w).view(n, n_kv_heads, hd).transpose(0, 1)
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    k, v = k.repeat_interleave(n_heads // n_kv_heads, 0), v.repeat_interleave(n_heads // n_kv_heads, 0)
    mask = torch.full((n, n), float("-inf")).triu(1)
    out = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1) @ v
    return out.transpose(0, 1).reshape(n, n_heads * hd)


class RandomWeights(dict):
    """Named random tensors for the fixtures, drawn from one seeded generator in call order (the
    order fixes the bits, so a fixture is rebuilt byte for byte)."""

    def __init__(self, seed):
        super().__init__()
        self.g = torch.Generator().manual_seed(seed)

    def mat(self, name, rows, cols, scale=1.0):
        self[name] = scale * torch.randn(rows, cols, generator=self.g) / cols ** 0.5

    def vec(self, name, size, base=0.0, scale=0.1):
        self[name] = base + scale * torch.randn(size, generator=self.g)

    def norm(self, name, size):
        self.vec(name, size, 1.0, 0.2)

    def swiglu(self, prefix, width, hidden):
        self.mat(prefix + "gate_proj.weight", width, hidden)
        self.mat(prefix + "up_proj.weight", width, hidden)
        self.mat(prefix + "down_proj.weight", hidden, width)

    def llama_ends(self, vocab, hidden):
        """Embedding, untied LM head and final norm."""
        self.mat("model.embed_tokens.weight", vocab, hidden)
        self.mat("lm_head.weight", vocab, hidden)
        self.norm("model.norm.weight", hidden)

    def llama_attention(self, layer, hidden, kv):
        """A sequential Llama layer's two norms and q, k, v, o."""
        self.norm(layer + "input_layernorm.weight", hidden)
        self.norm(layer + "post_attention_layernorm.weight", hidden)
        for name, rows in (("q_proj", hidden), ("k_proj", kv), ("v_proj", kv), ("o_proj", hidden)):
            self.mat(layer + f"self_attn.{name}.weight", rows, hidden)
