#!/usr/bin/env python3
"""The baseline beside `moe bench decode --backend cuda`: Hugging Face transformers with
accelerate's offloading (device_map from max_memory) of the same model shape, random bf16
weights, greedy decode timed step by step on one GPU.

accelerate keeps whole decoder layers on the GPU up to the budget and copies every other layer's
weights (all of its experts, routed or not) to the GPU at each forward, so its traffic per token
is the bytes it offloaded whatever the routing; the routing replayed by our engine does not
change its speed.

Usage:
  python3 scripts/bench_accelerate.py --config configs/models/mixtral-8x7b.json --gpu-mem 24GiB \
      [--cpu-mem 110GiB] [--prompt-tokens 16] [--decode-tokens 8] [--json]

Needs torch with CUDA, transformers and accelerate (tools/gpu_check.sh installs accelerate from
.cache/wheels when it is missing and a wheel is there).
"""
import argparse
import json
import re
import sys
import time


def parse_bytes(text):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?i?B?)\s*", text, re.IGNORECASE)
    if not m:
        raise SystemExit(f"bench_accelerate: cannot read the size '{text}' (e.g. 24GiB)")
    unit = m.group(2).upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(unit or " "))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="config.json of the shape (e.g. configs/models/mixtral-8x7b.json)")
    p.add_argument("--gpu-mem", required=True, help="GPU budget for weights, e.g. 24GiB")
    p.add_argument("--cpu-mem", default="110GiB", help="host memory for the offloaded layers")
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--decode-tokens", type=int, default=8)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--plan-only", action="store_true",
                   help="only print accelerate's placement (no weights, no GPU needed)")
    args = p.parse_args()

    try:
        import torch
        import transformers
        from accelerate import dispatch_model, infer_auto_device_map, init_empty_weights
    except ImportError as e:
        print(f"bench_accelerate: {e} (pip install torch transformers accelerate)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() and not args.plan_only:
        print("bench_accelerate: no CUDA device is visible to torch", file=sys.stderr)
        return 2

    with open(args.config) as f:
        raw = json.load(f)
    config = transformers.AutoConfig.for_model(**raw)
    with init_empty_weights():
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.tie_weights()
    max_memory = {0: parse_bytes(args.gpu_mem), "cpu": parse_bytes(args.cpu_mem)}
    device_map = infer_auto_device_map(model, max_memory=max_memory, dtype=torch.bfloat16,
                                       no_split_module_classes=model._no_split_modules)
    if "disk" in device_map.values():
        print("bench_accelerate: --gpu-mem plus --cpu-mem do not hold the model", file=sys.stderr)
        return 1

    sizes = {}
    for name, param in model.named_parameters():
        sizes[name] = param.numel() * param.element_size()
    def placed_on(name):
        best = None
        for prefix, device in device_map.items():
            if (prefix == "" or name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, device)
        return best[1] if best else 0
    on_gpu = sum(b for n, b in sizes.items() if placed_on(n) not in ("cpu", "disk"))
    offloaded = sum(sizes.values()) - on_gpu
    if args.plan_only:
        gib = 1024 ** 3
        print(json.dumps({"weights_on_gpu_bytes": on_gpu, "weights_offloaded_bytes": offloaded}) if args.json else
              f"accelerate would keep {on_gpu / gib:.2f} GiB on the GPU and copy {offloaded / gib:.2f} GiB per token")
        return 0

    # Materialise every weight in host memory, small random values (no init cost per module),
    # then let accelerate move the GPU part and hook the rest.
    start = time.perf_counter()
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02)
    model.tie_weights()
    model.eval()
    if hasattr(model, "model") and hasattr(model.model, "rotary_emb"):  # to_empty left its buffers unset
        model.model.rotary_emb = type(model.model.rotary_emb)(config)
    model = dispatch_model(model, device_map=device_map, main_device=0)
    setup_seconds = time.perf_counter() - start


    vocab = config.vocab_size
    prompt = torch.randint(0, vocab, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(1)).to(0)
    with torch.no_grad():
        out = model(prompt, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.decode_tokens):
            out = model(token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start

    result = {
        "benchmark": "accelerate-offload-decode",
        "config": args.config,
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu_mem": args.gpu_mem,
        "weights_on_gpu_bytes": on_gpu,
        "weights_offloaded_bytes": offloaded,
        "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens,
        "decode_tokens_per_second": args.decode_tokens / seconds,
        "setup_seconds": setup_seconds,
    }
    if args.json:
        print(json.dumps(result))
    else:
        gib = 1024 ** 3
        print(f"accelerate offload of {args.config}: {on_gpu / gib:.1f} GiB of weights on the GPU, "
              f"{offloaded / gib:.1f} GiB copied over per token")
        print(f"decode {result['decode_tokens_per_second']:.3f} tokens/s over {args.decode_tokens} tokens "
              f"after a {args.prompt_tokens}-token prompt ({result['device']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
