#!/usr/bin/env python3
"""Writes tests/fixtures/bam-expert-kv/ and tests/fixtures/bam-shared-kv/: tiny random BAM
checkpoints in the config convention of docs/MODEL_CONFIGS.md and what bam_reference.py
computes for them (see reference_fixture.py). Run: python3 tests/reference/make_bam_fixtures.py
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bam_reference as ref  # noqa: E402
import reference_fixture  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def config(kv):
    return {"model_type": "bam", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "num_attention_experts": 3, "attention_kv": kv,
            "num_experts": 4, "num_experts_per_tok": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "max_position_embeddings": 256, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
            "torch_dtype": "bfloat16"}


def main():
    for kv in ("expert", "shared"):
        c = config(kv)
        reference_fixture.write(ROOT / f"bam-{kv}-kv", c, ref.random_weights(c, seed=21),
                                lambda p, ids, c=c: ref.forward(c, p, ids), "bam_reference.py")


if __name__ == "__main__":
    main()
