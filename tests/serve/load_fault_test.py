"""A bounded load and fault test of `moe serve` (127.0.0.1 only; stops by itself): many concurrent
clients with random prompts, lengths and options, streaming or not, some cancelling mid-stream or
disconnecting abruptly, garbage requests mixed in. Asserts: no crash, no hang, every completed
response the text the same request gets alone (greedy and seeded sampling are deterministic),
memory back near its level after the load. Usage: load_fault_test.py PATH/TO/moe [--seconds S]"""
import argparse
import json
import random
import socket
import struct
import sys
import threading
import time
import http.client

from serve_harness import Server

parser = argparse.ArgumentParser()
parser.add_argument("moe")
parser.add_argument("--seconds", type=float, default=120)
parser.add_argument("--clients", type=int, default=24)
args = parser.parse_args()

WORDS = "the a little dog cat ran over hill story once upon time in beginning and then said".split()


def request(server, body, stream, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    c.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return c, r


def complete(server, body):
    """The text of a whole (non-streamed) completion, or None on a non-200."""
    c, r = request(server, body, False)
    data = r.read()
    c.close()
    return json.loads(data)["choices"][0]["text"] if r.status == 200 else None


def streamed_text(r, cancel_after=None):
    text, events = "", 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            return text, True
        chunk = json.loads(line[6:])
        text += chunk["choices"][0]["text"] if chunk.get("choices") else ""
        events += 1
        if cancel_after is not None and events >= cancel_after:
            return text, False
    return text, False


GARBAGE = [b"GET / HTTP/1.1\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{{{{{",
           b"\x00\xff\x10garbage\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nx",
           b"POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"model\": 3, \"messages\": 7}xx",
           b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"y" * 40000 + b"\r\n\r\n"]


def main():
    server = Server(args.moe, "--max-batch", "8", "--max-waiting", "64")
    rng = random.Random(1)
    oracle, oracle_lock = {}, threading.Lock()
    stats = {"completed": 0, "cancelled": 0, "disconnected": 0, "garbage": 0, "rejected": 0, "wrong": 0}
    lock = threading.Lock()
    stop_at = time.time() + args.seconds
    failures = []

    def alone(body):
        key = json.dumps(body, sort_keys=True)
        with oracle_lock:
            if key in oracle:
                return oracle[key]
        text = complete(server, dict(body, stream=False))
        with oracle_lock:
            oracle[key] = text
        return text

    def client(seed):
        r = random.Random(seed)
        while time.time() < stop_at:
            kind = r.random()
            try:
                if kind < 0.1:  # garbage on a raw socket
                    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                    s.sendall(r.choice(GARBAGE))
                    try:
                        s.recv(4096)
                    except OSError:
                        pass
                    s.close()
                    with lock:
                        stats["garbage"] += 1
                    continue
                body = {"model": "default", "prompt": " ".join(r.choice(WORDS) for _ in range(r.randint(1, 12))),
                        "max_tokens": r.randint(1, 24), "temperature": r.choice([0, 0.7, 1.0]), "seed": r.randint(0, 3)}
                if kind < 0.2:  # an abrupt disconnect mid-stream: a reset after the first bytes
                    payload = json.dumps(dict(body, stream=True, max_tokens=200)).encode()
                    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
                    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                    s.recv(r.randint(1, 600))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                    with lock:
                        stats["disconnected"] += 1
                    continue
                stream = kind < 0.7
                cancel = r.random() < 0.2 if stream else False
                c, resp = request(server, dict(body, stream=stream), stream)
                if resp.status in (429, 503):
                    resp.read()
                    c.close()
                    with lock:
                        stats["rejected"] += 1
                    continue
                if resp.status != 200:
                    failures.append(f"status {resp.status} for {body}: {resp.read()[:200]}")
                    c.close()
                    continue
                if stream:
                    text, done = streamed_text(resp, r.randint(1, 3) if cancel else None)
                else:
                    text, done = json.loads(resp.read())["choices"][0]["text"], True
                c.close()
                if not done:
                    with lock:
                        stats["cancelled"] += 1
                    continue
                want = alone(body)
                with lock:
                    stats["completed"] += 1
                    if want is not None and text != want:
                        stats["wrong"] += 1
                        failures.append(f"{body}: got {text!r}, alone {want!r}")
            except Exception as e:  # noqa: BLE001
                failures.append(f"client error: {type(e).__name__}: {e}")

    warm = complete(server, {"model": "default", "prompt": "warm up", "max_tokens": 4})
    time.sleep(0.5)
    rss_before = server.rss_kib()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.seconds + 300)
    hung = [t for t in threads if t.is_alive()]
    time.sleep(1)
    health = complete(server, {"model": "default", "prompt": "still there?", "max_tokens": 3})
    rss_after = server.rss_kib()
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.request("GET", "/metrics")
    metrics = dict(line.rsplit(" ", 1) for line in c.getresponse().read().decode().splitlines()
                   if line and not line.startswith("#"))
    c.close()
    code = server.stop()
    print(json.dumps(stats), f"rss {rss_before} -> {rss_after} KiB")
    ok = True
    for what, good in [("no client hung", not hung), ("the server still answers", health is not None and warm is not None),
                       ("every completed response equals its request alone", stats["wrong"] == 0 and not failures),
                       ("some requests completed", stats["completed"] > 0),
                       ("memory stable after the load (under +64 MiB)", rss_after - rss_before < 64 * 1024),
                       ("every sequence and KV block freed (gone clients included)",
                        float(metrics["moe_running_sequences"]) == 0 and float(metrics["moe_kv_blocks_used"]) == 0),
                       ("SIGTERM exits 0", code == 0)]:
        print(("ok: " if good else "FAIL: ") + what)
        ok &= good
    for f in failures[:10]:
        print("  ", f)
    sys.exit(0 if ok else 1)


main()
