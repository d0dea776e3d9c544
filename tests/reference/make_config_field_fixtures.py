#!/usr/bin/env python3
"""Every field of each family's transformers configuration class, at its defaults, as the
config.json that class writes (issue 19, item 1): tests/unit/loading/config_fields_test.cpp
parses each and checks that every field is either read (implemented or refused by name) or
listed there as changing no math. Rerun with a newer transformers to catch new fields.
Run: python3 tests/reference/make_config_field_fixtures.py  (transformers)
"""
import json
import pathlib

import transformers

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "config_fields"
# Class defaults no model can run, replaced by the released models' values: DeepseekV2Config leaves
# num_experts_per_tok null, and Glm4MoeConfig's head_dim falls back to 4096 / 96 (its half is odd).
RUNNABLE = {"DeepseekV2Config": {"num_experts_per_tok": 6}, "Glm4MoeConfig": {"head_dim": 128}}
CLASSES = ["MixtralConfig", "Qwen2MoeConfig", "Qwen3MoeConfig", "OlmoeConfig", "DeepseekV2Config", "DeepseekV3Config",
           "Glm4MoeConfig", "GptOssConfig"]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name in CLASSES:
        config = getattr(transformers, name)(**RUNNABLE.get(name, {}))
        fields = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
        fields["_transformers_version"] = transformers.__version__
        path = OUT / f"{config.model_type}.json"
        path.write_text(json.dumps(fields, indent=1, sort_keys=True) + "\n")
        print(f"{path.name}: {len(fields)} fields")


if __name__ == "__main__":
    main()
