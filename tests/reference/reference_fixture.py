"""Writes a fixture folder for a family whose oracle is a PyTorch reference in this folder, in
the format of the transformers fixtures: config.json, bf16 model.safetensors,
expected.safetensors ("logits" for every prompt position, plus any extra named logits) and
expected.json (prompt, greedy continuation, versions)."""
import json

import torch
from safetensors.torch import save_file

PROMPT = [1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3]
NEW_TOKENS = 8


def write(out, config, weights, forward, reference_name, extra_logits=None, extra_json=None):
    """weights: f32 tensors, stored as bf16; forward(weights_f32, ids) -> logits [len(ids), vocab]."""
    stored = {k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}
    f32 = {k: v.float() for k, v in stored.items()}
    with torch.no_grad():
        logits = forward(f32, PROMPT)
        seq = list(PROMPT)
        for _ in range(NEW_TOKENS):
            seq.append(int(forward(f32, seq)[-1].argmax()))
        extra = {name: fn(f32, PROMPT) for name, fn in (extra_logits or {}).items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    save_file(stored, str(out / "model.safetensors"))
    save_file({"logits": logits.contiguous(), **{k: v.contiguous() for k, v in extra.items()}},
              str(out / "expected.safetensors"))
    doc = {"prompt": PROMPT, "generated": seq[len(PROMPT):], **(extra_json or {}), "torch": torch.__version__,
           "note": f"f32 reference over bf16 weights; see tests/reference/{reference_name}"}
    (out / "expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(out, seq[len(PROMPT):])
    return f32
