#!/usr/bin/env python3
"""Writes tests/fixtures/ds_moe/: a tiny random DS-MoE checkpoint in the config convention of
docs/MODEL_CONFIGS.md and what ds_moe_reference.py computes for it (see reference_fixture.py):
"logits" under the config's inference method (top-2), plus "logits_dense" and
"logits_threshold" (p >= 0.2) for the same prompt; and tests/fixtures/ds_moe-att2/, the same
shape with 2 attention experts beside 4 MLP experts (as DS-MoE-1B/3B/6B have fewer attention
experts than MLP experts), top-2 and dense.
Run: python3 tests/reference/make_ds_moe_fixture.py
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ds_moe_reference as ref  # noqa: E402
import reference_fixture  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "ds_moe"
CONFIG = {
    "model_type": "ds_moe", "vocab_size": 256, "n_embd": 64, "n_layer": 2, "n_head": 8, "num_experts": 4,
    "n_inner": 32, "n_positions": 64, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_pytorch_tanh",
    "position_embedding_type": "learned_absolute", "add_bias": True, "tie_word_embeddings": True,
    "inference_method": {"top_k": 2}, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
}


def main():
    reference_fixture.write(
        OUT, CONFIG, ref.random_weights(CONFIG, seed=11),
        lambda p, ids: ref.forward(CONFIG, p, ids, CONFIG["inference_method"]), "ds_moe_reference.py",
        extra_logits={"logits_dense": lambda p, ids: ref.forward(CONFIG, p, ids, None),
                      "logits_threshold": lambda p, ids: ref.forward(CONFIG, p, ids, {"threshold": 0.2})})
    config = dict(CONFIG, num_attention_experts=2)
    reference_fixture.write(
        OUT.parent / "ds_moe-att2", config, ref.random_weights(config, seed=12),
        lambda p, ids: ref.forward(config, p, ids, config["inference_method"]), "ds_moe_reference.py",
        extra_logits={"logits_dense": lambda p, ids: ref.forward(config, p, ids, None)})


if __name__ == "__main__":
    main()
