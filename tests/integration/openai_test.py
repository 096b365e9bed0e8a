#!/usr/bin/env python3
"""OpenAI's own Python SDK against the server's HTTP front (/v1/models, /v1/completions): whole
and streamed completions, stop strings, n with a seed, logprobs, echo, errors, a client that leaves
mid-stream or mid-completion (the server's metrics show the generation cancelled), bearer tokens; and the curl
examples of docs/protocols/openai.md. Runs with the protocol-clients venv (.venv-clients).

    .venv-clients/bin/python tests/integration/openai_test.py \
        --server-binary build/server/elliptical-server --fixtures build/fixtures
"""
import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request

import httpx2
import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check, wait_for  # noqa: E402
from server import fixture_repository, start_with_ports as start, stop_server  # noqa: E402

PROMPT = "And God said"


def stop(server, what):
    code = stop_server(server)
    check(code == 0, f"{what}: SIGTERM stops the server cleanly")


def metric(port, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "60", *args], capture_output=True, text=True, check=True).stdout


def test_models(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    check(ids == ["lm"], f"models.list(): the ready language models only ({ids})")
    check(models.data[0].object == "model" and models.data[0].owned_by == "elliptical-server",
          "models.list(): OpenAI's model objects")
    check(client.models.retrieve("lm").id == "lm", "models.retrieve('lm')")


def test_completions(client):
    c = client.completions.create(model="lm", prompt=PROMPT, max_tokens=12, temperature=0)
    check(c.object == "text_completion" and c.id.startswith("cmpl-") and c.model == "lm",
          f"completion: id {c.id}, object, model")
    choice = c.choices[0]
    check(len(c.choices) == 1 and choice.index == 0 and choice.text, f"completion: one choice ({choice.text!r})")
    check(choice.finish_reason in ("length", "stop"), f"completion: finish_reason {choice.finish_reason}")
    u = c.usage
    check(u.prompt_tokens > 0 and 0 < u.completion_tokens <= 12 and u.total_tokens == u.prompt_tokens + u.completion_tokens,
          f"completion: usage {u.prompt_tokens} + {u.completion_tokens} = {u.total_tokens}")
    if choice.finish_reason == "length":
        check(u.completion_tokens == 12, "completion: 'length' after max_tokens tokens")
    again = client.completions.create(model="lm", prompt=PROMPT, max_tokens=12, temperature=0)
    check(again.choices[0].text == choice.text, "completion: greedy is deterministic")
    default = client.completions.create(model="lm", prompt=PROMPT, temperature=0)
    check(default.usage.completion_tokens <= 16, "completion: max_tokens defaults to 16")

    # Streaming: the chunks concatenate to the same greedy text; usage in the last chunk.
    stream = client.completions.create(model="lm", prompt=PROMPT, max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    # At least one text chunk and the usage chunk: tokens produced while a chunk is being sent
    # are coalesced into the next, so how many text chunks there are depends on timing.
    check(len(chunks) >= 2 and any(ch.choices and ch.choices[0].text for ch in chunks),
          f"stream: {len(chunks)} chunks")
    check(all(ch.object == "text_completion" and ch.id == chunks[0].id for ch in chunks), "stream: one id, text_completion chunks")
    check(text == choice.text, f"stream: the chunks concatenate to the non-streaming text ({text!r})")
    check(finishes == [choice.finish_reason], f"stream: one finish_reason, on the last choice chunk ({finishes})")
    last = chunks[-1]
    check(last.usage is not None and last.usage.completion_tokens == u.completion_tokens
          and last.usage.prompt_tokens == u.prompt_tokens, "stream: usage in the last chunk")
    check(all(ch.usage is None for ch in chunks[:-1]), "stream: no usage before the last chunk")

    # Stop strings: the text ends before the stop string, finish_reason "stop".
    full = client.completions.create(model="lm", prompt=PROMPT, max_tokens=24, temperature=0).choices[0].text
    stop_at = next((full[i:i + 2] for i in range(2, len(full) - 2) if full[i:i + 2].strip()), None)
    if stop_at:
        s = client.completions.create(model="lm", prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop_at, "zzzz"])
        check(s.choices[0].finish_reason == "stop" and full.startswith(s.choices[0].text)
              and stop_at not in s.choices[0].text, f"stop {stop_at!r}: text cut before it, finish_reason stop")
        s1 = client.completions.create(model="lm", prompt=PROMPT, max_tokens=24, temperature=0, stop=stop_at)
        check(s1.choices[0].text == s.choices[0].text, "stop as one string")

    # n choices with a seed: reproducible, choice i seeded seed + i.
    a = client.completions.create(model="lm", prompt=PROMPT, max_tokens=10, temperature=1.0, n=2, seed=11)
    b = client.completions.create(model="lm", prompt=PROMPT, max_tokens=10, temperature=1.0, n=2, seed=11)
    check([c.index for c in a.choices] == [0, 1], "n=2: two choices, indexed")
    check([c.text for c in a.choices] == [c.text for c in b.choices], "n=2 with a seed: reproducible")
    first = client.completions.create(model="lm", prompt=PROMPT, max_tokens=10, temperature=1.0, seed=11)
    second = client.completions.create(model="lm", prompt=PROMPT, max_tokens=10, temperature=1.0, seed=12)
    check([first.choices[0].text, second.choices[0].text] == [c.text for c in a.choices],
          "n=2: choice i is the single completion seeded seed + i")
    check(a.usage.completion_tokens == first.usage.completion_tokens + second.usage.completion_tokens
          and a.usage.prompt_tokens == first.usage.prompt_tokens, "n=2: usage counts both choices, the prompt once")
    streamed = list(client.completions.create(model="lm", prompt=PROMPT, max_tokens=10, temperature=1.0, n=2, seed=11,
                                              stream=True))
    per_choice = ["".join(ch.choices[0].text for ch in streamed if ch.choices and ch.choices[0].index == i) for i in (0, 1)]
    check(per_choice == [c.text for c in a.choices], "n=2 streamed: each choice's chunks give its text")

    # Several prompts: a choice set per prompt.
    many = client.completions.create(model="lm", prompt=[PROMPT, "In the beginning"], max_tokens=4, temperature=0)
    check(len(many.choices) == 2 and many.choices[0].text == client.completions.create(
        model="lm", prompt=PROMPT, max_tokens=4, temperature=0).choices[0].text, "two prompts: one choice each, in order")

    # logprobs: the chosen tokens' logprobs, their texts concatenating to the choice's text.
    lp = client.completions.create(model="lm", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=1).choices[0]
    check(lp.logprobs is not None and len(lp.logprobs.tokens) == len(lp.logprobs.token_logprobs)
          == len(lp.logprobs.text_offset) > 0, f"logprobs: {len(lp.logprobs.tokens)} tokens")
    check("".join(lp.logprobs.tokens) == lp.text, "logprobs: the tokens concatenate to the text")
    check(all(x <= 0 for x in lp.logprobs.token_logprobs), "logprobs: natural-log probabilities <= 0")
    check(all(lp.text[o:].startswith(t) for t, o in zip(lp.logprobs.tokens, lp.logprobs.text_offset)),
          "logprobs: text_offset locates each token in the text")
    slp = [ch for ch in client.completions.create(model="lm", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=1,
                                                  stream=True) if ch.choices]
    streamed_tokens = [t for ch in slp if ch.choices[0].logprobs for t in ch.choices[0].logprobs.tokens]
    check(len(streamed_tokens) == len(lp.logprobs.tokens), "logprobs streamed: every token once")
    test_sdk_idioms(client, choice.text)

    # echo: the prompt first.
    e = client.completions.create(model="lm", prompt=PROMPT, max_tokens=6, temperature=0, echo=True).choices[0]
    check(e.text == PROMPT + client.completions.create(model="lm", prompt=PROMPT, max_tokens=6, temperature=0).choices[0].text,
          "echo: the prompt, then the completion")
    streamed_echo = "".join(ch.choices[0].text for ch in client.completions.create(
        model="lm", prompt=PROMPT, max_tokens=6, temperature=0, echo=True, stream=True) if ch.choices)
    check(streamed_echo == e.text, "echo streamed: the prompt comes with the first chunk")

    # echo with logprobs scores the prompt: its tokens first (the first has no logprob: null),
    # then the generated ones; max_tokens 0 only scores (a scoring request, nothing generated).
    el_response = client.completions.create(model="lm", prompt=PROMPT, max_tokens=3, temperature=0, echo=True,
                                            logprobs=0)
    el = el_response.choices[0]
    plain = client.completions.create(model="lm", prompt=PROMPT, max_tokens=3, temperature=0, logprobs=0).choices[0]
    n_prompt = len(el.logprobs.tokens) - len(plain.logprobs.tokens)
    check(n_prompt >= 2 and el.logprobs.token_logprobs[0] is None
          and all(x is not None and x <= 0 for x in el.logprobs.token_logprobs[1:]),
          f"echo + logprobs: {n_prompt} prompt tokens first, the first without a logprob")
    # The fixture's tiny tokenizer has no "G" (it decodes as its unknown symbol), so the tokens'
    # text need not spell the prompt; their count is the prompt's token count.
    offsets = el.logprobs.text_offset
    check(n_prompt == el_response.usage.prompt_tokens and offsets == sorted(offsets) and offsets[0] == 0
          and offsets[n_prompt - 1] <= len(PROMPT) <= offsets[n_prompt],
          "echo + logprobs: one entry per prompt token, at offsets in order from 0 to the prompt's end")
    check(el.logprobs.tokens[n_prompt:] == plain.logprobs.tokens, "echo + logprobs: then the same generated tokens")
    scored = client.completions.create(model="lm", prompt=PROMPT, max_tokens=0, echo=True, logprobs=0)
    s0 = scored.choices[0]
    # The same prompt through the same prefill: equal up to float32 reordering across batch
    # shapes (a few ulps of logits of magnitude ~10, far below 1e-3).
    check(s0.text == PROMPT and scored.usage.completion_tokens == 0 and s0.finish_reason == "length"
          and s0.logprobs.tokens == el.logprobs.tokens[:n_prompt] and s0.logprobs.token_logprobs[0] is None
          and all(abs(a - b) < 1e-3 for a, b in zip(s0.logprobs.token_logprobs[1:],
                                                    el.logprobs.token_logprobs[1:n_prompt])),
          "max_tokens 0 with echo + logprobs: only the prompt's scores, the same as with generation")


def test_errors(client):
    try:
        client.completions.create(model="no-such-model", prompt=PROMPT)
        check(False, "an unknown model raises")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and e.body.get("code") == "model_not_found", f"unknown model: NotFoundError ({e.message})")
    for what, kwargs in (("max_tokens of the wrong type", {"max_tokens": "many"}),
                         ("n beyond 8", {"n": 9}),
                         ("temperature beyond 2", {"temperature": 3}),
                         ("an empty prompt (the core's check)", {"prompt": ""}),
                         ("too many stop strings (the core's limit)", {"stop": [str(i) for i in range(40)]}),
                         ("max_tokens 0 without echo", {"max_tokens": 0})):
        try:
            client.completions.create(**{"model": "lm", "prompt": PROMPT, **kwargs})
            check(False, f"{what} raises")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.body.get("type") == "invalid_request_error",
                  f"{what}: BadRequestError ({e.message})")
    try:
        client.completions.create(model="lm", prompt=PROMPT, extra_body={"logprobs": "yes"})
        check(False, "logprobs of the wrong type raises")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "logprobs", "wrong type: param names the field")


def test_disconnect(http_port, metrics_port):
    """A client that closes the connection mid-stream: its generation is cancelled and recorded."""
    before = metric(metrics_port, "elliptical_requests_total", protocol="openai", code="CANCELLED")
    # A long prompt makes each step slower, so the generation is still running when the client leaves.
    body = {"model": "lm", "prompt": " ".join(["And it came to pass"] * 60), "max_tokens": 1000, "temperature": 0,
            "stream": True}
    with httpx2.Client(timeout=60) as h:
        with h.stream("POST", f"http://127.0.0.1:{http_port}/v1/completions", json=body) as r:
            check(r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"),
                  "raw stream: 200 text/event-stream")
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            check(json.loads(first[6:])["choices"][0]["finish_reason"] is None, "raw stream: a first chunk")
            wait_for(lambda: metric(metrics_port, "elliptical_in_flight_requests", protocol="openai") == 1,
                     "the stream is in flight")
    # The connection is closed here, mid-stream.
    wait_for(lambda: metric(metrics_port, "elliptical_requests_total", protocol="openai", code="CANCELLED") == before + 1,
             "the disconnected stream is counted CANCELLED")
    wait_for(lambda: metric(metrics_port, "elliptical_in_flight_requests", protocol="openai") == 0,
             "in-flight openai requests back to 0")
    check(True, "a client leaving mid-stream frees its generation (CANCELLED, in flight 0)")


def test_disconnect_whole(http_port, metrics_port):
    """A non-streaming client that closes its connection while its completion runs: the server
    sees the socket close (it writes nothing before the answer), cancels and records it."""
    before = metric(metrics_port, "elliptical_requests_total", protocol="openai", code="CANCELLED")
    ok_before = metric(metrics_port, "elliptical_requests_total", protocol="openai", code="OK")
    # Eight choices of 1000 tokens after a long prompt: seconds of work (4 s on a 2-core VM) for
    # the server to notice the close in (it checks at every wake-up, after each decode step).
    body = json.dumps({"model": "lm", "prompt": " ".join(["And it came to pass"] * 60), "max_tokens": 1000,
                       "temperature": 0, "n": 8}).encode()
    sock = socket.create_connection(("127.0.0.1", http_port), timeout=30)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    wait_for(lambda: metric(metrics_port, "elliptical_in_flight_requests", protocol="openai") == 8,
             "the whole completion's 8 choices are in flight")
    sock.close()
    wait_for(lambda: metric(metrics_port, "elliptical_requests_total", protocol="openai", code="CANCELLED") == before + 8,
             "the abandoned whole completion's 8 choices are counted CANCELLED")
    wait_for(lambda: metric(metrics_port, "elliptical_in_flight_requests", protocol="openai") == 0,
             "in-flight openai requests back to 0")
    check(metric(metrics_port, "elliptical_requests_total", protocol="openai", code="OK") == ok_before,
          "the abandoned whole completion is not counted OK")
    check(True, "a non-streaming client leaving frees its generation (CANCELLED, in flight 0)")


def test_http_edges(http_port):
    big = json.dumps({"model": "lm", "prompt": "x" * (2 << 20)})
    r = httpx2.post(f"http://127.0.0.1:{http_port}/v1/completions", content=big,
                    headers={"content-type": "application/json"}, timeout=30)
    check(r.status_code == 413, f"a body beyond --max_http_body_bytes: {r.status_code}")
    r = httpx2.post(f"http://127.0.0.1:{http_port}/v1/completions", content="{not json", timeout=30)
    check(r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", "malformed JSON: 400, OpenAI's shape")
    r = httpx2.get(f"http://127.0.0.1:{http_port}/v1/nothing", timeout=30)
    check(r.status_code == 404 and "error" in r.json(), "an unknown route: 404 with an error object")


def test_sdk_idioms(client, greedy_12):
    """The openai SDK's own README idioms, unmodified, and the sampling fields it passes through."""
    # Streaming, as the SDK's README shows it: choices[0] of every chunk. Without
    # stream_options.include_usage no chunk is without choices (no usage chunk).
    stream = client.completions.create(model="lm", prompt=PROMPT, max_tokens=12, temperature=0, stream=True)
    pieces = []
    for chunk in stream:
        pieces.append(chunk.choices[0].text)
    check("".join(pieces) == greedy_12, "SDK idiom: chunk.choices[0].text over the whole stream")

    # top_logprobs: logprobs=N lists the N most likely tokens at each position (the chosen one
    # among them under greedy decoding, and the most likely).
    top = client.completions.create(model="lm", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3).choices[0]
    tl = top.logprobs.top_logprobs
    check(tl is not None and len(tl) == len(top.logprobs.tokens) == 8, f"top_logprobs: one entry per token ({None if tl is None else len(tl)})")
    check(all(1 <= len(d) <= 3 for d in tl) and sum(len(d) for d in tl) >= 8 * 3 - 2,
          f"top_logprobs: three alternatives at each position ({[len(d) for d in tl]})")
    check(all(abs(max(d.values()) - lp) < 1e-6 for d, lp in zip(tl, top.logprobs.token_logprobs)),
          "top_logprobs: greedy's choice is the most likely, with its own logprob")
    check(all(sum(math.exp(v) for v in d.values()) <= 1 + 1e-5 and all(v <= 0 for v in d.values()) for d in tl),
          "top_logprobs: probabilities of distinct tokens, summing to at most 1")
    streamed_top = [d for ch in client.completions.create(model="lm", prompt=PROMPT, max_tokens=8, temperature=0,
                                                           logprobs=3, stream=True)
                    for d in (ch.choices[0].logprobs.top_logprobs if ch.choices[0].logprobs else [])]
    check(streamed_top == tl, "top_logprobs streamed: the same alternatives")

    # Penalties change a greedy text that repeats itself; a +100 bias makes one token win everywhere.
    plain = client.completions.create(model="lm", prompt=PROMPT, max_tokens=24, temperature=0).choices[0].text
    penalised = client.completions.create(model="lm", prompt=PROMPT, max_tokens=24, temperature=0,
                                          frequency_penalty=2.0, presence_penalty=2.0).choices[0].text
    check(penalised != plain, "presence_penalty and frequency_penalty change the greedy text")
    repeated = client.completions.create(model="lm", prompt=PROMPT, max_tokens=24, temperature=0,
                                         extra_body={"repetition_penalty": 1.5}).choices[0].text
    check(repeated != plain, "repetition_penalty (vLLM's extension) changes the greedy text")
    biased = client.completions.create(model="lm", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=1,
                                       logit_bias={"100": 100}).choices[0]
    check(len(set(biased.logprobs.tokens)) == 1 and len(biased.logprobs.tokens) == 6,
          f"logit_bias +100: one token every time ({biased.logprobs.tokens})")
    try:
        client.completions.create(model="lm", prompt=PROMPT, max_tokens=2, logit_bias={"99999999": 1})
        check(False, "logit_bias beyond the vocabulary is refused")
    except openai.BadRequestError as e:
        check("logit_bias" in str(e) and "vocabulary" in str(e), f"logit_bias beyond the vocabulary: 400 ({e})")
    try:
        client.completions.create(model="lm", prompt=PROMPT, max_tokens=2, presence_penalty=2.5)
        check(False, "presence_penalty beyond 2 is refused")
    except openai.BadRequestError as e:
        check(e.body is not None and e.body.get("param") == "presence_penalty", f"presence_penalty 2.5: 400 ({e})")


def test_curl(http_port):
    """The examples of docs/protocols/openai.md."""
    base = f"http://127.0.0.1:{http_port}"
    models = json.loads(curl(f"{base}/v1/models"))
    check(models["object"] == "list" and models["data"][0]["id"] == "lm", "curl /v1/models")
    out = curl(f"{base}/v1/completions", "-N", "-H", "Content-Type: application/json",
               "-d", json.dumps({"model": "lm", "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "stream": True}))
    events = [e for e in out.split("\n\n") if e.strip()]
    check(all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]",
          f"curl stream: {len(events)} server-sent events ending with [DONE]")
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    check(all(c["choices"] and "usage" not in c for c in chunks), "curl stream: no usage chunk unless asked for")
    asked = curl(f"{base}/v1/completions", "-N", "-H", "Content-Type: application/json",
                 "-d", json.dumps({"model": "lm", "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "stream": True,
                                   "stream_options": {"include_usage": True}}))
    asked_chunks = [json.loads(e[6:]) for e in asked.split("\n\n") if e.strip() and e != "data: [DONE]"]
    check(asked_chunks[-1]["usage"]["completion_tokens"] > 0 and asked_chunks[-1]["choices"] == []
          and all(c["usage"] is None for c in asked_chunks[:-1]), "curl stream with include_usage: usage last")
    whole = json.loads(curl(f"{base}/v1/completions", "-H", "Content-Type: application/json",
                            "-d", json.dumps({"model": "lm", "prompt": PROMPT, "max_tokens": 8, "temperature": 0})))
    check("".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == whole["choices"][0]["text"],
          "curl: streamed and whole texts agree")


def test_auth(args, work):
    tokens = os.path.join(work, "tokens")
    with open(tokens, "w") as f:
        f.write("# the test's token\nsecret-token-1\n")
    repo = fixture_repository(args.fixtures, os.path.join(work, "auth"), names=("lm",))
    server, http_port, _ = start(args.server_binary, repo, os.path.join(work, "auth"), f"--auth_tokens_file={tokens}")
    try:
        base = f"http://127.0.0.1:{http_port}/v1"
        good = openai.OpenAI(base_url=base, api_key="secret-token-1", max_retries=0)
        wait_for(lambda: [m.id for m in good.models.list().data] == ["lm"], "the token server's lm is ready", 60)
        check(good.completions.create(model="lm", prompt=PROMPT, max_tokens=4).choices[0].text is not None,
              "auth: the right token works")
        # The SDK refuses to run without a key: the missing header is tried without it, below.
        for what, headers in (("a wrong token", {}), ("another scheme", {"Authorization": "Basic c2VjcmV0"})):
            try:
                openai.OpenAI(base_url=base, api_key="wrong", max_retries=0,
                              default_headers=headers).completions.create(model="lm", prompt=PROMPT)
                check(False, f"auth: {what} raises")
            except openai.AuthenticationError as e:
                check(e.status_code == 401, f"auth: {what}: AuthenticationError ({e.message})")
        r = httpx2.get(f"http://127.0.0.1:{http_port}/v1/models", timeout=30)
        check(r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
              and r.json()["error"]["type"] == "authentication_error", "auth: no token: 401 in OpenAI's shape")
        r = httpx2.get(f"http://127.0.0.1:{http_port}/v2/health/live", timeout=30)
        check(r.status_code != 401, f"auth: /v2/health/* is exempt ({r.status_code})")
    finally:
        stop(server, "token server")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="openai_")
    repo = fixture_repository(args.fixtures, work, names=("lm", "vit"))
    server, http_port, metrics_port = start(args.server_binary, repo, work, "--max_http_body_bytes=1048576")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{http_port}/v1", api_key="x", max_retries=0)
        wait_for(lambda: [m.id for m in client.models.list().data] == ["lm"], "the lm is ready", 60)
        test_models(client)
        test_completions(client)
        test_errors(client)
        test_http_edges(http_port)
        test_curl(http_port)
        test_disconnect(http_port, metrics_port)
        test_disconnect_whole(http_port, metrics_port)
        check(metric(metrics_port, "elliptical_requests_total", protocol="openai", code="OK") > 10,
              "the core counted the calls under protocol=openai")
    finally:
        stop(server, "server")
    test_auth(args, work)
    print(f"{checks.passed} checks passed")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
