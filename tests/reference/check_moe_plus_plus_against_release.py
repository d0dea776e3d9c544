#!/usr/bin/env python3
"""Checks moe_plus_plus_reference.py's MoE++ layer against the released implementation
(SkyworkAI/MoE-plus-plus, MoE++/moe_plus_plus_layer.py), which is imported from a local copy and
never vendored: the same random weights through both, for two layers (with and without the
gating residual) and each gating option.
Run: python3 tests/reference/check_moe_plus_plus_against_release.py PATH/TO/moe_plus_plus_layer.py
"""
import importlib.util
import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import moe_plus_plus_reference as ref  # noqa: E402


class FusedSwiGLU(torch.nn.Module):
    """An FFN expert shaped as the release's (up_proj holds gate and up)."""

    def __init__(self, hidden, width):
        super().__init__()
        self.hidden_size = hidden
        self.up_proj = torch.nn.Linear(hidden, 2 * width, bias=False)
        self.down_proj = torch.nn.Linear(width, hidden, bias=False)

    def forward(self, x):
        g, u = torch.chunk(self.up_proj(x), 2, dim=-1)
        return self.down_proj(F.silu(g) * u)


def main(path):
    spec = importlib.util.spec_from_file_location("release_layer", path)
    release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(release)
    worst = 0.0
    for options in [dict(), dict(moe_use_logits_norm=True), dict(moe_use_mixtral_gating=True),
                    dict(moe_feature_no_mul_topk=True), dict(moe_2layer_gate=False)]:
        config = dict(hidden_size=32, intermediate_size=24, num_experts=[10], num_constant_experts=2,
                      num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, vocab_size=16, **options)
        p = ref.random_weights(config, seed=3)
        moe = release.MOE(32, FusedSwiGLU(32, 24), num_experts=10,
                          moe_use_mixtral_gating=config.get("moe_use_mixtral_gating", False),
                          moe_2layer_gate=config.get("moe_2layer_gate", True),
                          moe_use_logits_norm=config.get("moe_use_logits_norm", False),
                          moe_feature_no_mul_topk=config.get("moe_feature_no_mul_topk", False))
        prefix = "model.layers.0.mlp."
        state = {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}
        missing, unexpected = moe.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        assert all(k.startswith("moe.experts.experts.") is False or "constant" not in k for k in missing), missing
        g = torch.Generator().manual_seed(5)
        h = torch.randn(1, 9, 32, generator=g)
        previous = torch.randn(9, 10, generator=g)
        with torch.no_grad():
            for prev in (None, previous):
                theirs, their_logits = moe(h.clone(), None, gate_residual=prev)
                ours, our_logits = ref.moe_layer(config, p, prefix + "moe.", h[0], prev)
                err = (theirs[0] - ours).abs().max().item() / ours.abs().max().item()
                lerr = (their_logits - our_logits).abs().max().item()
                worst = max(worst, err, lerr)
                print(f"{options or 'defaults'}, residual {prev is not None}: output rel err {err:.2e}, logits err {lerr:.2e}")
    assert worst < 1e-5, worst
    print("the reference matches the released MoE++ layer")


if __name__ == "__main__":
    main(sys.argv[1])
