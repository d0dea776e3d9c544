#!/usr/bin/env python3
"""Reproduces the tables of docs/RESULTS.md with the engine: every number comes from `moe eval`
or `moe bench decode` (--json) on the trained models in models/ and the held-out split of each
domain of ../shared/data/text (tools/train/data.py: the last 10% of each file).

  python3 scripts/results.py [--moe build/tools/moe] [--tokens 16384] > /tmp/results.md
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "train"))
import data  # noqa: E402

WINDOW = 256
DS_ROUTINGS = ["dense", "topk:3", "topk:2", "topk:1", "threshold:0.25", "threshold:0.5", "threshold:0.75", "threshold:1",
               "threshold:1.5", "threshold-topk:0.5", "threshold-topk:1"]
UPCYCLED = [("seed-tiny", "dense seed"), ("dense-tiny", "dense, continued (compute-matched)"),
            ("btx-tiny", "FFN-only upcycling (BTX)"), ("bam-tiny", "BAM (FFN + attention experts)")]


def moe(args, *command):
    out = subprocess.run([args.moe, *command, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def evaluate(args, model, text, routing=None):
    command = ["eval", "--model", str(ROOT / "models" / model), "--text", str(text), "--window", str(WINDOW),
               "--max-tokens", str(args.tokens)]
    if routing:
        command += ["--routing", routing]
    return moe(args, *command)


def ds_moe_table(args, texts):
    info = json.loads((ROOT / "models" / "ds-moe-tiny" / "train.json").read_text())
    config = json.loads((ROOT / "models" / "ds-moe-tiny" / "config.json").read_text())
    total = info["parameters"]
    embedding = config["vocab_size"] * config["n_embd"]  # tied: counted once, always active
    head = ("| routing | experts / token / layer | active parameters (all) | active (non-embedding) | "
            + " | ".join(data.DOMAINS) + " | mean | vs dense |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    dense_mean = None
    for routing in DS_ROUTINGS:
        rows = {d: evaluate(args, "ds-moe-tiny", texts[d], routing) for d in data.DOMAINS}
        ppl = {d: r["perplexity"] for d, r in rows.items()}
        mean = sum(ppl.values()) / len(ppl)
        dense_mean = dense_mean or mean
        experts = sum(r["routing"]["experts_per_token_per_layer"] for r in rows.values()) / len(rows)
        active = sum(r["routing"]["active_parameters_per_token"] for r in rows.values()) / len(rows)
        print(f"| `{routing}` | {experts:.2f} | {active / 1e6:.3f} M ({100 * active / total:.0f}%) | "
              f"{100 * (active - embedding) / (total - embedding):.0f}% | "
              + " | ".join(f"{ppl[d]:.2f}" for d in data.DOMAINS) + f" | {mean:.2f} | {100 * (mean / dense_mean - 1):+.1f}% |")


def upcycling_table(args, texts):
    head = "| model | parameters | active / token | " + " | ".join(data.DOMAINS) + " | mean |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for model, label in UPCYCLED:
        info = json.loads((ROOT / "models" / model / "train.json").read_text())
        rows = {d: evaluate(args, model, texts[d]) for d in data.DOMAINS}
        ppl = {d: r["perplexity"] for d, r in rows.items()}
        active = rows["web"].get("routing", {}).get("active_parameters_per_token")
        print(f"| {label} (`{model}`) | {info['parameters'] / 1e6:.2f} M | "
              + (f"{active / 1e6:.2f} M" if active else "all") + " | "
              + " | ".join(f"{ppl[d]:.2f}" for d in data.DOMAINS) + f" | {sum(ppl.values()) / len(ppl):.2f} |")


def offload_table(args):
    """Decode with the routed experts offloaded: each budget holds a share of the experts on the
    (virtual) device, the rest are copied in on demand from the page cache; the ceiling is the
    same run with every expert resident (`--gpu-mem all`), measured in the same invocation."""
    print("| model | routing | expert budget | cache hit rate | KiB copied / token | decode tok/s "
          "| resident tok/s (ceiling) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for model, routing, budgets in (("ds-moe-tiny", "dense", "all,65KiB,260KiB,520KiB"),
                                    ("ds-moe-tiny", "default", "all,65KiB,260KiB,520KiB"),
                                    ("bam-tiny", "default", "all,200KiB,800KiB,2MiB")):
        doc = moe(args, "bench", "decode", "--model", str(ROOT / "models" / model), "--gpu-mem", budgets,
                  "--host-mem", "0", "--routing", routing, "-n", "256")
        rows = doc["rows"]
        resident = rows[0]["decode_tokens_per_second"]
        for r in rows[1:]:
            print(f"| `{model}` | `{routing}` | {r['gpu_mem']} | {100 * r['cache_hit_rate']:.1f}% | "
                  f"{r['bytes_copied_per_token'] / 1024:.1f} | {r['decode_tokens_per_second']:.0f} | {resident:.0f} | "
                  f"{r['decode_tokens_per_second'] / resident:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moe", default=str(ROOT / "build" / "tools" / "moe"))
    parser.add_argument("--tokens", type=int, default=8192, help="held-out tokens scored per domain")
    parser.add_argument("--tables", default="ds-moe,upcycling,offload", help="which tables, comma-separated")
    args = parser.parse_args()
    tables = args.tables.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        data.write_test_splits(folder)
        texts = {d: folder / f"{d}.txt" for d in data.DOMAINS}
        if "ds-moe" in tables:
            print(f"### DS-MoE: routing at inference (perplexity, first {args.tokens} held-out tokens per domain)\n")
            ds_moe_table(args, texts)
        if "upcycling" in tables:
            print(f"\n### BAM against FFN-only upcycling and the dense seed (perplexity, {args.tokens} tokens per domain)\n")
            upcycling_table(args, texts)
        if "offload" in tables:
            print("\n### Offloading the trained models (`moe bench decode`, 256 tokens, experts from the page cache)\n")
            offload_table(args)


if __name__ == "__main__":
    main()
