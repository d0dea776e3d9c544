"""The five domains of ../shared/data/text, their train/test split, the tokenizer trained on the
train split, and random training windows."""
import json
import pathlib

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT = ROOT.parent / "shared" / "data" / "text"
# domain name -> corpus file (the data README's words for each)
DOMAINS = {"web": "c4.txt", "books": "b3g.txt", "science": "arxiv.txt", "code": "github_oss_with_stack.txt",
           "encyclopedia": "wikipedia.txt"}
TEST_FRACTION = 0.1


def split(domain):
    """(train, test) text: the test split is the last 10% of the file, cut at a line break."""
    text = (TEXT / DOMAINS[domain]).read_text(encoding="utf-8")
    cut = text.index("\n", int(len(text) * (1 - TEST_FRACTION))) + 1
    return text[:cut], text[cut:]


def write_test_splits(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    for domain in DOMAINS:
        (out_dir / f"{domain}.txt").write_text(split(domain)[1], encoding="utf-8")


def train_tokenizer(out_dir, vocab_size):
    """Byte-level BPE (GPT-2's pre-tokenizer) trained on the train splits of every domain."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

    def chunks():
        for domain in DOMAINS:
            train = split(domain)[0]
            for i in range(0, len(train), 4000):
                yield train[i:i + 4000]

    tok.train_from_iterator(chunks(), trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": False}, indent=1) + "\n")
    return tok


class Corpus:
    """Token ids of every domain's train and test split (cached as .npy in the work folder)."""

    def __init__(self, work, tokenizer):
        self.train, self.test = {}, {}
        for domain in DOMAINS:
            for part, store in (("train", self.train), ("test", self.test)):
                path = work / f"tokens-{domain}-{part}.npy"
                if not path.exists():
                    text = split(domain)[0 if part == "train" else 1]
                    np.save(path, np.array(tokenizer.encode(text).ids, dtype=np.int32))
                store[domain] = torch.from_numpy(np.load(path).astype(np.int64))

    def batch(self, generator, batch_size, seq_len, domains):
        """batch_size random windows of seq_len + 1 tokens, each from a domain drawn uniformly."""
        rows = []
        for _ in range(batch_size):
            ids = self.train[domains[int(torch.randint(len(domains), (1,), generator=generator))]]
            start = int(torch.randint(len(ids) - seq_len - 1, (1,), generator=generator))
            rows.append(ids[start:start + seq_len + 1])
        return torch.stack(rows)
