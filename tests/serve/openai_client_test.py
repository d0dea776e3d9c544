"""`moe serve` driven by the real `openai` client and by raw HTTP: completions and chat, whole and
streamed, equal to `moe run`; 16 concurrent streaming clients each getting their text alone;
OpenAI's errors and statuses; the API key; SIGTERM exits 0.
Usage: openai_client_test.py PATH/TO/moe"""
import concurrent.futures
import http.client
import json
import sys

import openai

from serve_harness import Server, moe_run

moe = sys.argv[1]
failures = 0


def check(ok, what):
    global failures
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures += 1


def raw(server, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    c.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


server = Server(moe)
client = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
try:
    models = client.models.list()
    check([m.id for m in models.data] == ["default"], "GET /v1/models lists the model")

    # Completions, greedy and seeded, against `moe run` alone.
    cases = [("Once upon a time", 12, 0.0, 1.0, 0), ("The little dog", 9, 0.8, 0.9, 7), ("In the beginning", 14, 1.0, 1.0, 3)]
    alone = {}
    for prompt, n, t, p, seed in cases:
        want = moe_run(moe, prompt, n, t, p, seed)
        got = client.completions.create(model="default", prompt=prompt, max_tokens=n, temperature=t, top_p=p, seed=seed)
        if want["stop_reason"] == "length":
            check(got.choices[0].text == want["text"], f"completion of {prompt!r} (t={t}) equals moe run: {got.choices[0].text!r}")
            check(got.choices[0].finish_reason == "length", "finish_reason length")
        check(got.usage.prompt_tokens == want["prompt_tokens"] and got.usage.completion_tokens <= n, "usage counts tokens")
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="default", prompt=prompt, max_tokens=n, temperature=t, top_p=p, seed=seed, stream=True) if c.choices)
        check(streamed == got.choices[0].text, f"streamed completion of {prompt!r} equals the whole one")
        alone[prompt] = got.choices[0].text

    # Stop strings: the text ends before the first one, finish_reason stop.
    text = alone["Once upon a time"]
    stop = text[4:7]
    got = client.completions.create(model="default", prompt="Once upon a time", max_tokens=12, temperature=0, stop=[stop])
    check(got.choices[0].text == text[:text.find(stop)] and got.choices[0].finish_reason == "stop",
          f"stop {stop!r}: {got.choices[0].text!r}")
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="default", prompt="Once upon a time", max_tokens=12, temperature=0, stop=stop, stream=True) if c.choices)
    check(streamed == got.choices[0].text, "a stop string in a stream")

    # Chat, whole and streamed, with usage in the stream.
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me a story."}]
    whole = client.chat.completions.create(model="default", messages=messages, max_tokens=10, temperature=0)
    check(whole.choices[0].message.role == "assistant" and whole.choices[0].finish_reason in ("length", "stop"), "chat answer")
    chunks = list(client.chat.completions.create(model="default", messages=messages, max_tokens=10, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    check(streamed == whole.choices[0].message.content, f"streamed chat equals the whole one: {streamed!r}")
    check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens,
          "include_usage: the last chunk carries usage")

    # 16 concurrent streaming clients, each with its own prompt and options: each gets its text alone.
    jobs = [(f"Story number {i}:", 6 + i % 5, 0.0 if i % 2 else 0.9, 1.0, 100 + i) for i in range(16)]
    want = {j: client.completions.create(model="default", prompt=j[0], max_tokens=j[1], temperature=j[2], seed=j[4])
            .choices[0].text for j in jobs}

    def stream_one(j):
        c = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
        return "".join(x.choices[0].text for x in c.completions.create(
            model="default", prompt=j[0], max_tokens=j[1], temperature=j[2], seed=j[4], stream=True) if x.choices)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = dict(zip(jobs, pool.map(stream_one, jobs)))
    check(all(got[j] == want[j] for j in jobs), f"16 concurrent streams each equal alone ({sum(got[j] == want[j] for j in jobs)}/16)")

    # Errors: OpenAI's exceptions for OpenAI's statuses.
    def raises(kind, what, **kw):
        try:
            client.completions.create(**kw)
            check(False, f"{what}: accepted")
        except kind as e:
            check(True, f"{what}: {type(e).__name__} {e.status_code}")
        except Exception as e:  # noqa: BLE001
            check(False, f"{what}: {type(e).__name__} {e}")

    raises(openai.NotFoundError, "an unknown model", model="gpt-4", prompt="hi")
    raises(openai.UnprocessableEntityError, "max_tokens of the wrong type", model="default", prompt="hi", max_tokens="ten")
    raises(openai.BadRequestError, "an unknown field", model="default", prompt="hi", extra_body={"bogus": 1})
    raises(openai.BadRequestError, "max_tokens past the context", model="default", prompt="hi", max_tokens=10**6)
    raises(openai.BadRequestError, "a prompt longer than the context", model="default", prompt="word " * 5000, max_tokens=1)
    raises(openai.BadRequestError, "temperature out of range", model="default", prompt="hi", temperature=7)
    raises(openai.BadRequestError, "n = 2", model="default", prompt="hi", n=2)

    status, _, body = raw(server, "POST", "/v1/completions", b"{\"model\": \"default\", \"prompt\": ")
    check(status == 400 and b"not valid JSON" in body, f"malformed JSON: {status}")
    status, _, body = raw(server, "POST", "/v1/completions", b"x" * (9 << 20))
    check(status == 413, f"a body over the limit: {status}")
    status, _, _ = raw(server, "GET", "/v1/completions")
    check(status == 405, f"GET on a POST route: {status}")
    status, _, _ = raw(server, "GET", "/nowhere")
    check(status == 404, f"an unknown route: {status}")
    status, _, body = raw(server, "GET", "/health")
    check(status == 200 and json.loads(body)["status"] == "ok", "GET /health")
    status, headers, body = raw(server, "GET", "/metrics")
    text = body.decode()
    check(status == 200 and "moe_requests_total{endpoint=\"/v1/completions\",status=\"200\"}" in text and
          "moe_time_to_first_token_seconds_bucket" in text and "moe_kv_blocks_used" in text, "GET /metrics in Prometheus' format")
finally:
    code = server.stop()
check(code == 0, f"SIGTERM: exit {code}")

# An API key: /v1/* needs it.
server = Server(moe, "--api-key", "sesame")
try:
    try:
        openai.OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0).models.list()
        check(False, "a wrong API key accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "a wrong API key: 401")
    ok = openai.OpenAI(base_url=server.base + "/v1", api_key="sesame", max_retries=0).completions.create(
        model="default", prompt="hi", max_tokens=2)
    check(len(ok.choices) == 1, "the right API key")
finally:
    check(server.stop() == 0, "SIGTERM with a key: exit 0")

# A model with a chat template of its own (Qwen2.5's, on the default model's weights and
# tokenizer): the chat prompt is the template as Python's jinja2 renders it in transformers' way.
import os
import shutil
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "chat_templates"))
import render_fixtures  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
with tempfile.TemporaryDirectory() as folder:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(root, "models", "ds-moe-tiny", name), folder)
    with open(os.path.join(root, "tests", "fixtures", "chat_templates", "qwen2.5-instruct.jinja")) as f:
        template = f.read()
    with open(os.path.join(folder, "tokenizer_config.json")) as f:
        config = json.load(f)
    config["chat_template"] = template
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    server = Server(moe, "--model", folder, "--served-model-name", "tiny")
    try:
        c = openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Once upon a time"}]
        rendered = render_fixtures.make_env().from_string(template).render(
            messages=messages, add_generation_prompt=True, bos_token=config["bos_token"], eos_token=config["eos_token"])
        chat = c.chat.completions.create(model="tiny", messages=messages, max_tokens=8, temperature=0)
        plain = c.completions.create(model="tiny", prompt=rendered, max_tokens=8, temperature=0)
        check(chat.usage.prompt_tokens == plain.usage.prompt_tokens and chat.choices[0].message.content == plain.choices[0].text,
              f"chat through Qwen2.5's template = the jinja2-rendered prompt ({chat.usage.prompt_tokens} tokens)")
    finally:
        check(server.stop() == 0, "SIGTERM: exit 0")

print(f"{failures} failures")
sys.exit(1 if failures else 0)
