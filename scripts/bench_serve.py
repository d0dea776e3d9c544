#!/usr/bin/env python3
"""Serving benchmark of `moe serve`, like vLLM's: at each concurrency, that many clients stream
completions back to back for a while; prints throughput (generated tokens/s), time to first token
and inter-token latency (p50, p99), beside the same model's `moe bench decode --batch` rate at
that batch measured in the same run, and the server's overhead against it.
Usage: scripts/bench_serve.py [--moe build/tools/moe] [--concurrency 1,4,16,64] [--seconds 20]
       [--prompt-tokens 16] [--max-tokens 32] [-- extra `moe serve` / `moe bench decode` flags]
Only 127.0.0.1 is contacted; the server is started and stopped here."""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "serve"))
from serve_harness import Server  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--moe", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "tools", "moe"))
p.add_argument("--concurrency", default="1,4,16,64")
p.add_argument("--seconds", type=float, default=20)
p.add_argument("--prompt-tokens", type=int, default=16)
p.add_argument("--max-tokens", type=int, default=32)
p.add_argument("--json", action="store_true")
p.add_argument("extra", nargs="*", help="flags for both moe serve and moe bench decode (--model/--config ...)")
a = p.parse_args()
levels = [int(x) for x in a.concurrency.split(",")]


def percentile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def one_request(port, prompt, out):
    start = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = {"model": "bench", "prompt": prompt, "max_tokens": a.max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    c.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    stamps, tokens = [], 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["text"]:
            stamps.append(time.perf_counter())
    c.close()
    if stamps:
        out.append((stamps[0] - start, [b - a_ for a_, b in zip(stamps, stamps[1:])], tokens, time.perf_counter() - start))


# Prompts of about --prompt-tokens tokens: words the tokenizer keeps whole.
words = "the story of a little dog who ran over the hill and found a cat".split()
prompts = [" ".join(words[(i + j) % len(words)] for j in range(a.prompt_tokens)) for i in range(512)]

# The engine alone: `moe bench decode --batch` at the same batches.
decode = subprocess.run([a.moe, "bench", "decode", "--batch", a.concurrency, "--prompt-tokens", str(a.prompt_tokens), "-n",
                         str(a.max_tokens), "--json", *a.extra], check=True, capture_output=True, text=True)
# Offloaded (a --gpu-mem among the flags): the engine's offloaded rate is the one to compare with.
engine_rate = {row["batch"]: row.get("offloaded", row)["tokens_per_second"] for row in json.loads(decode.stdout)["rows"]}

server = Server(a.moe, "--served-model-name", "bench", "--max-batch", str(max(levels)), "--max-waiting", "4096", *a.extra)
rows = []
try:
    for level in levels:
        results, stop = [], time.time() + a.seconds
        def client(k):
            i = k
            while time.time() < stop:
                one_request(server.port, prompts[i % len(prompts)], results)
                i += level
        threads = [threading.Thread(target=client, args=(k,)) for k in range(level)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        ttft = [r[0] for r in results]
        itl = [x for r in results for x in r[1]]
        tokens = sum(r[2] for r in results)
        row = {"concurrency": level, "requests": len(results), "tokens_per_second": tokens / wall,
               "ttft_p50": percentile(ttft, 0.5), "ttft_p99": percentile(ttft, 0.99), "itl_p50": percentile(itl, 0.5),
               "itl_p99": percentile(itl, 0.99), "engine_tokens_per_second": engine_rate.get(level, 0.0)}
        row["vs_engine"] = row["tokens_per_second"] / row["engine_tokens_per_second"] if row["engine_tokens_per_second"] else 0
        rows.append(row)
        if not a.json:
            print(f"concurrency {level:>3}: {row['tokens_per_second']:8.1f} tok/s over {len(results)} requests | TTFT p50 "
                  f"{1e3 * row['ttft_p50']:7.1f} ms p99 {1e3 * row['ttft_p99']:7.1f} ms | ITL p50 {1e3 * row['itl_p50']:6.1f} ms "
                  f"p99 {1e3 * row['itl_p99']:6.1f} ms | engine alone {row['engine_tokens_per_second']:8.1f} tok/s: "
                  f"{row['vs_engine']:.2f}", flush=True)
finally:
    code = server.stop()
if a.json:
    print(json.dumps({"benchmark": "serve", "rows": rows, "server_exit": code}, indent=1))
