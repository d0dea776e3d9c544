#!/usr/bin/env python3
"""Trains the tiny models of docs/RESULTS.md on ../shared/data/text and exports them for the engine.

  python3 tools/train/train.py all --work /tmp/moe-train   # every stage below, in order
  python3 tools/train/train.py STAGE --work DIR            # one stage (its inputs must exist)

Stages: tokenizer (byte-level BPE on the train splits), ds-moe (DS-MoE trained dense with the
mutual-information loss), seed (a dense parallel Llama), branches (the seed continued on each
domain), btx (FFN-only upcycling of the branches), bam (BAM: FFN and attention experts from the
branches), dense (the seed continued for as many steps as branches + mixture: the compute-matched
dense baseline), mixtral (a Mixtral of 8 layers x 16 experts, top-2, from scratch with Switch
load balancing: the model the routing predictors are judged on), fixtures (held-out snippets and PyTorch's perplexities of the exported models on
them, the oracle of tests/integration/trained_models_test.cpp). Checkpoints go to WORK;
exported models (config.json, bf16 safetensors, the tokenizer, train.json with the recipe and
PyTorch's held-out perplexities) to models/<name>/. Steps scale with --scale (1.0: 81 minutes
for every stage on 2 CPU cores, DS-MoE 25 of them; mixtral 16 more).
"""
import argparse
import copy
import json
import math
import pathlib
import shutil
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import data  # noqa: E402
import models  # noqa: E402

MODELS = data.ROOT / "models"
SEQ_LEN = 256
BATCH = 16
EVAL_TOKENS = 8192  # per domain, in windows of SEQ_LEN
# base steps of each stage (times --scale)
STEPS = {"ds-moe": 1200, "seed": 800, "branch": 200, "mixture": 300, "mixtral": 1500}
MI_WEIGHT = 0.01  # DS-MoE's mutual-information loss weight
BALANCE_WEIGHT = 0.01  # Switch load balancing on the upcycled FFN routers
MIXTRAL_BALANCE_WEIGHT = 0.02  # router_aux_loss_coef of Mixtral-8x7B's released config.json
DEVICE = torch.device("cpu")  # where training runs (--device); evaluation and export stay on the CPU


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def set_lr(opt, step, steps, peak, warmup):
    lr = peak * step / warmup if step < warmup else \
        peak * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))
    for g in opt.param_groups:
        g["lr"] = lr


def train(model, corpus, steps, lr, domains, seed, aux_weight, name):
    """AdamW, linear warmup and cosine decay to 10%; next-token loss plus aux_weight * the aux loss."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(DEVICE).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    start, running = time.time(), None
    for step in range(steps):
        set_lr(opt, step, steps, lr, max(1, steps // 20))
        batch = corpus.batch(gen, BATCH, SEQ_LEN, domains).to(DEVICE)
        logits, aux = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        total = loss + aux_weight * sum(aux) / max(1, len(aux)) if aux else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == steps - 1:
            log(f"{name}: step {step + 1}/{steps} loss {running:.3f} ({time.time() - start:.0f} s)")
    return model.cpu().eval()


@torch.no_grad()
def perplexity(model, ids, routing=None):
    """The engine's protocol (runtime/model/perplexity.h): non-overlapping windows of SEQ_LEN, each
    from an empty cache; every position but a window's last is scored."""
    ids = ids[:EVAL_TOKENS]
    windows = ids[:len(ids) // SEQ_LEN * SEQ_LEN].view(-1, SEQ_LEN)
    nll, count = 0.0, 0
    for chunk in windows.split(8):
        logits, _ = model(chunk, routing) if routing is not None else model(chunk)
        nll += F.cross_entropy(logits[:, :-1].flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum").item()
        count += chunk[:, 1:].numel()
    return math.exp(nll / count)


def bf16_copy(model):
    """The model with its weights rounded to bf16, as exported (computation stays f32)."""
    copy_ = copy.deepcopy(model)
    for p in copy_.parameters():
        p.data = p.data.bfloat16().float()
    return copy_


def export(model, name, work, recipe, corpus, extra_evals=()):
    out = MODELS / name
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().bfloat16().contiguous() for k, v in model.tensors().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(model.config, indent=1) + "\n")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(work / "tokenizer" / f, out / f)
    rounded = bf16_copy(model)
    evals = {d: round(perplexity(rounded, corpus.test[d]), 4) for d in data.DOMAINS}
    info = {"recipe": recipe, "parameters": sum(t.numel() for t in tensors.values()),
            "pytorch_perplexity": {"window": SEQ_LEN, "tokens_per_domain": EVAL_TOKENS, "dense": evals}}
    for label, routing in extra_evals:
        info["pytorch_perplexity"][label] = {d: round(perplexity(rounded, corpus.test[d], routing), 4)
                                             for d in data.DOMAINS}
    (out / "train.json").write_text(json.dumps(info, indent=1) + "\n")
    log(f"exported {out} ({info['parameters']} parameters): {evals}")


def load_corpus(work):
    return data.Corpus(work, Tokenizer.from_file(str(work / "tokenizer" / "tokenizer.json")))


def vocab_size(work):
    return Tokenizer.from_file(str(work / "tokenizer" / "tokenizer.json")).get_vocab_size()


def steps(kind, args):
    return max(10, int(STEPS[kind] * args.scale))


def stage_tokenizer(args):
    data.train_tokenizer(args.work / "tokenizer", args.vocab)
    data.write_test_splits(args.work / "test")
    log(f"tokenizer ({args.vocab}) and test splits in {args.work}")


def stage_ds_moe(args):
    corpus = load_corpus(args.work)
    model = models.DsMoe(models.ds_moe_config(vocab_size(args.work)))
    n = steps("ds-moe", args)

    class WithMi(torch.nn.Module):  # the MI loss over every router as the aux loss
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            logits, routers = self.m(ids)
            return logits, [models.mutual_information_loss(p) for p in routers]

    train(WithMi(model), corpus, n, 3e-3, list(data.DOMAINS), 1, MI_WEIGHT, "ds-moe")
    torch.save(model.state_dict(), args.work / "ds-moe.pt")
    E = model.config["num_experts"]
    export(model, "ds-moe-tiny", args.work,
           {"stage": "ds-moe", "steps": n, "batch": BATCH, "seq_len": SEQ_LEN, "lr": 3e-3, "mi_weight": MI_WEIGHT,
            "domains": "all, uniform"}, corpus,
           extra_evals=[("top_k:2", ("top_k", 2)), ("top_k:1", ("top_k", 1)), (f"threshold:{E * 0.25}",
                                                                               ("threshold", E * 0.25))])


def seed_model(args):
    return models.ParallelMoe(models.parallel_config(vocab_size(args.work)))


def stage_seed(args):
    corpus = load_corpus(args.work)
    n = steps("seed", args)
    model = train(seed_model(args), corpus, n, 3e-3, list(data.DOMAINS), 2, 0.0, "seed")
    torch.save(model.state_dict(), args.work / "seed.pt")
    export(model, "seed-tiny", args.work, {"stage": "seed", "steps": n, "domains": "all, uniform"}, corpus)


def stage_branches(args):
    corpus = load_corpus(args.work)
    for i, domain in enumerate(data.DOMAINS):
        model = seed_model(args)
        model.load_state_dict(torch.load(args.work / "seed.pt"))
        train(model, corpus, steps("branch", args), 1e-3, [domain], 10 + i, 0.0, f"branch {domain}")
        torch.save(model.state_dict(), args.work / f"branch-{domain}.pt")


def average(tensors):
    return torch.stack(tensors).mean(0)


def upcycle(args, attention_experts):
    """The mixture of the domain branches: FFN experts from the branches (one per domain), attention
    experts from the branches too (BAM) or their average (BTX), embeddings and norms averaged, new
    routers."""
    branches = []
    for domain in data.DOMAINS:
        m = seed_model(args)
        m.load_state_dict(torch.load(args.work / f"branch-{domain}.pt"))
        branches.append(m)
    E = len(branches)
    config = models.parallel_config(vocab_size(args.work), attention_experts=E if attention_experts else 1,
                                    experts=E)
    mix = models.ParallelMoe(config)
    with torch.no_grad():
        mix.embed_tokens.weight.copy_(average([b.embed_tokens.weight for b in branches]))
        mix.norm.weight.copy_(average([b.norm.weight for b in branches]))
        for l, layer in enumerate(mix.layers):
            src = [b.layers[l] for b in branches]
            layer.input_layernorm.weight.copy_(average([s.input_layernorm.weight for s in src]))
            for e, s in enumerate(src):
                layer.experts[e].load_state_dict(s.experts[0].state_dict())
            if attention_experts:
                for e, s in enumerate(src):
                    layer.attn_experts[e].load_state_dict(s.attn_experts[0].state_dict())
            else:
                for name, p in layer.attn_experts[0].named_parameters():
                    p.copy_(average([dict(s.attn_experts[0].named_parameters())[name] for s in src]))
            layer.gate.weight.normal_(0, 0.02)
            layer.attn_router.weight.normal_(0, 0.02)
    return mix


def stage_mixture(args, name, attention_experts):
    corpus = load_corpus(args.work)
    n = steps("mixture", args)
    model = train(upcycle(args, attention_experts), corpus, n, 1e-3, list(data.DOMAINS), 3, BALANCE_WEIGHT, name)
    torch.save(model.state_dict(), args.work / f"{name}.pt")
    export(model, f"{name}-tiny", args.work,
           {"stage": name, "branch_steps": steps("branch", args), "mixture_steps": n, "lr": 1e-3,
            "balance_weight": BALANCE_WEIGHT, "domains": list(data.DOMAINS)}, corpus)


def stage_dense(args):
    corpus = load_corpus(args.work)
    model = seed_model(args)
    model.load_state_dict(torch.load(args.work / "seed.pt"))
    n = len(data.DOMAINS) * steps("branch", args) + steps("mixture", args)
    train(model, corpus, n, 1e-3, list(data.DOMAINS), 4, 0.0, "dense")
    export(model, "dense-tiny", args.work, {"stage": "dense", "seed_steps": steps("seed", args),
                                            "continued_steps": n, "lr": 1e-3}, corpus)


FIXTURES = data.ROOT / "tests" / "fixtures" / "trained"
SNIPPET_CHARS = 4000
# exported model -> the routings its fixture checks (None: the model's own)
CHECKED = {"ds-moe-tiny": {"dense": None, "default": ("threshold", 0.5), "topk:1": ("top_k", 1),
                           "topk:2": ("top_k", 2), "threshold:1": ("threshold", 1.0)},
           "seed-tiny": {"default": None}, "dense-tiny": {"default": None}, "btx-tiny": {"default": None},
           "bam-tiny": {"default": None}, "mixtral-tiny": {"default": None}}


def load_exported(name):
    """A model rebuilt from models/<name>/ (config.json and the bf16 safetensors), in f32."""
    from safetensors.torch import load_file
    folder = MODELS / name
    config = json.loads((folder / "config.json").read_text())
    kinds = {"ds_moe": models.DsMoe, "mixtral": models.MixtralMoe}
    model = kinds.get(config["model_type"], models.ParallelMoe)(config)
    stored = load_file(str(folder / "model.safetensors"))
    with torch.no_grad():
        for key, param in model.tensors().items():
            param.copy_(stored[key].float())
    return model.eval()


def stage_mixtral(args):
    """A Mixtral of 8 layers x 16 experts, top-2, trained from scratch with Switch load balancing: enough
    experts a layer for the predictors of docs/PERF.md to mean something (the others have 4-5)."""
    corpus = load_corpus(args.work)
    n = steps("mixtral", args)
    model = models.MixtralMoe(models.mixtral_config(vocab_size(args.work)))
    train(model, corpus, n, 3e-3, list(data.DOMAINS), 5, MIXTRAL_BALANCE_WEIGHT, "mixtral")
    torch.save(model.state_dict(), args.work / "mixtral.pt")
    export(model, "mixtral-tiny", args.work,
           {"stage": "mixtral", "steps": n, "batch": BATCH, "seq_len": SEQ_LEN, "lr": 3e-3,
            "balance_weight": MIXTRAL_BALANCE_WEIGHT, "domains": "all, uniform"}, corpus)


def stage_fixtures(args):
    """Snippets of each domain's held-out text (cut at a line break) and PyTorch's perplexity of
    every exported model on them, in the engine's protocol."""
    tokenizer = Tokenizer.from_file(str(MODELS / "ds-moe-tiny" / "tokenizer.json"))
    FIXTURES.mkdir(parents=True, exist_ok=True)
    snippets = {}
    for domain in data.DOMAINS:
        test = data.split(domain)[1]
        snippets[domain] = test[:test.index("\n", SNIPPET_CHARS) + 1]
        (FIXTURES / f"{domain}.txt").write_text(snippets[domain], encoding="utf-8")
    expected = {"window": SEQ_LEN, "models": {}}
    for name, routings in CHECKED.items():
        model = load_exported(name)
        expected["models"][name] = {
            label: {d: perplexity_of_text(model, tokenizer, snippets[d], routing) for d in data.DOMAINS}
            for label, routing in routings.items()}
        log(f"{name}: {expected['models'][name]}")
    (FIXTURES / "perplexity.json").write_text(json.dumps(expected, indent=1) + "\n")


@torch.no_grad()
def perplexity_of_text(model, tokenizer, text, routing):
    """The engine's protocol on all of `text`: windows of SEQ_LEN (the last one shorter)."""
    ids = torch.tensor(tokenizer.encode(text).ids)
    nll, count = 0.0, 0
    for begin in range(0, len(ids) - 1, SEQ_LEN):
        chunk = ids[begin:begin + SEQ_LEN][None]
        if chunk.shape[1] < 2:
            break
        logits, _ = model(chunk, routing) if routing is not None else model(chunk)
        nll += F.cross_entropy(logits[0, :-1].double(), chunk[0, 1:], reduction="sum").item()
        count += chunk.shape[1] - 1
    return math.exp(nll / count)


STAGES = {"tokenizer": stage_tokenizer, "ds-moe": stage_ds_moe, "seed": stage_seed, "branches": stage_branches,
          "btx": lambda a: stage_mixture(a, "btx", False), "bam": lambda a: stage_mixture(a, "bam", True),
          "dense": stage_dense, "mixtral": stage_mixtral, "fixtures": stage_fixtures}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGES, "all"])
    parser.add_argument("--work", type=pathlib.Path, required=True, help="folder for checkpoints and token caches")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every stage's steps")
    parser.add_argument("--vocab", type=int, default=4096, help="BPE vocabulary size")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    for name in (STAGES if args.stage == "all" else [args.stage]):
        t = time.time()
        STAGES[name](args)
        log(f"stage {name} done in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
