#!/usr/bin/env python3
"""Score through the real server and the Python client against the training code's own
perplexity for the same weights and text: the fixture LM ("lm", elliptical with the prefix
estimate, and "lm-dot", its dot-product twin) and the default kjv-lm from models/.

The reference is training/evaluate.py's perplexity() run on training/nets.py's network loaded
from the model directory (training/model_files.py load()), with the text tokenized as the
training code tokenizes a document (training/evaluate.py lm_stream: sp.encode(text), no BOS,
then the end-of-sequence id). Score does the same by default; with end_of_sequence=False
nothing is appended.

    python tests/integration/score_test.py --server-binary build/server/elliptical-server \
        --fixtures build/fixtures
    python tests/integration/score_test.py --fixtures build/fixtures --reference-only   # no server
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import sentencepiece as spm
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(ROOT, "training"))
import checks  # noqa: E402
from checks import check  # noqa: E402
import evaluate  # noqa: E402  (training/evaluate.py)
import model_files  # noqa: E402  (training/model_files.py)

TEXTS = {
    "lm": ["The lighthouse keeper climbed the spiral stairs every evening and lit the great lamp.",
           "Once upon a time a small robot learned to count the stars."],
    "kjv-lm": ["In the beginning God created the heaven and the earth.",
               "And God said, Let there be light: and there was light."],
}
TEXTS["lm-dot"] = TEXTS["lm"]

# float32 tolerance, as tests/support/float32_tolerance.h derives it: two float32 evaluations
# of one network that differ only in summation order differ per logit by at most
# tau * max(1, |x|), tau = 2 * R * lambda * sqrt(n) * u for R sequential reductions (10 per
# transformer block, the embedding and head counted as one block more) and n the longest
# reduction. A log-probability x_t - logsumexp(x) then moves by at most 2 * tau * X (X the
# largest max(1, |logit|) of the text), plus the float32 log-sum-exp's own rounding over the
# vocabulary; so does the mean over the scored tokens, and perplexity = exp(mean nll) moves by
# a relative exp(that) - 1.
UNIT_ROUNDOFF, LAMBDA, REDUCTIONS_PER_BLOCK = 2.0 ** -24, 4.0, 10


def reorder_tolerance(reductions, longest):
    return 2.0 * reductions * LAMBDA * math.sqrt(longest) * UNIT_ROUNDOFF


def nll_tolerance(config, logits):
    lm = config["lm"]
    tau = reorder_tolerance((lm["num_layers"] + 1) * REDUCTIONS_PER_BLOCK,
                            max(lm["d_model"], lm["d_inner"], logits.shape[0]))
    big = max(1.0, float(logits.abs().max()))
    lse = float(torch.logsumexp(logits.double(), dim=-1).abs().max())
    return 2 * tau * big + 2 * reorder_tolerance(2, config["vocab_size"]) * max(1.0, lse)


def reference(directory, text, end_of_sequence=True):
    """-> (token ids, per-token logprobs of tokens 1.., perplexity, tolerance on the mean nll),
    computed by the training code on the model directory's weights."""
    net, config = model_files.load(directory)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(directory, config["tokenizer"]))
    ids = sp.encode(text) + ([sp.eos_id()] if end_of_sequence else [])
    window = torch.tensor([ids], dtype=torch.int64)
    ppl = evaluate.perplexity(net, window)  # positions 1..W-1 given what precedes them
    with torch.no_grad():
        logits = net(window[:, :-1])[0]  # (W-1, V) float32, as perplexity() computes them
    logprobs = F.log_softmax(logits.double(), dim=-1).gather(1, window[0, 1:, None])[:, 0]
    return ids, logprobs.tolist(), ppl, nll_tolerance(config, logits)


def check_reference(directory, name):
    """The reference half on its own: perplexity() agrees with its per-token logprobs."""
    for text in TEXTS[name]:
        ids, logprobs, ppl, tol = reference(directory, text)
        mean = -sum(logprobs) / len(logprobs)
        check(len(logprobs) == len(ids) - 1 and abs(math.log(ppl) - mean) <= tol,
              f"{name}: reference perplexity {ppl:.4f} = exp(-mean logprob) over {len(logprobs)} tokens "
              f"(tolerance {tol:.2e} on the mean)")


def check_server(client, directory, name):
    for text in TEXTS[name]:
        ids, logprobs, ppl, tol = reference(directory, text)
        scores = client.score(name, text)
        check([t.id for t in scores] == ids, f"{name}: the server tokenizes as the training code ({len(ids)} ids)")
        check(scores[0].logprob is None and all(t.logprob is not None for t in scores[1:]),
              f"{name}: every token but the first has a logprob")
        worst = max(abs(t.logprob - w) for t, w in zip(scores[1:], logprobs))
        check(worst <= tol, f"{name}: per-token logprobs within {tol:.2e} of the reference (worst {worst:.2e})")
        check(scores.scored_tokens == len(ids) - 1, f"{name}: {scores.scored_tokens} scored tokens")
        check(abs(scores.total_logprob - sum(logprobs)) <= tol * len(logprobs), f"{name}: total logprob")
        rel = abs(scores.perplexity - ppl) / ppl
        check(rel <= math.expm1(tol),
              f"{name}: perplexity {scores.perplexity:.4f} vs training's {ppl:.4f} (relative {rel:.2e})")
        check(abs(client.perplexity(name, text) - scores.perplexity) <= 1e-9 * ppl,
              f"{name}: perplexity() is score()'s perplexity")
        check("".join(t.text for t in scores) == text, f"{name}: the tokens' texts make up the text")
        # Without the end-of-sequence token: one token fewer, scored as the start of a text.
        ids2, logprobs2, ppl2, tol2 = reference(directory, text, end_of_sequence=False)
        open_ended = client.score(name, text, end_of_sequence=False)
        check([t.id for t in open_ended] == ids2 and abs(open_ended.perplexity - ppl2) / ppl2 <= math.expm1(tol2),
              f"{name}: end_of_sequence=False scores the text alone ({open_ended.perplexity:.4f})")


def repository(fixtures, work):
    repo = os.path.join(work, "models")
    lm = os.path.join(fixtures, "core", "lm", "models", "lm-chat")
    shutil.copytree(lm, os.path.join(repo, "lm"))
    shutil.copytree(lm, os.path.join(repo, "lm-dot"))
    with open(os.path.join(repo, "lm-dot", "config.json")) as f:
        config = json.load(f)
    config["attention"]["mode"] = "dot_product"
    with open(os.path.join(repo, "lm-dot", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copytree(os.path.join(ROOT, "models", "kjv-lm"), os.path.join(repo, "kjv-lm"))
    return repo


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary")
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    p.add_argument("--reference-only", action="store_true", help="check the reference half only (no server)")
    args = p.parse_args()
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="score_test_")
    repo = repository(args.fixtures, work)
    names = ["lm", "lm-dot", "kjv-lm"]
    if args.reference_only:
        for name in names:
            check_reference(os.path.join(repo, name), name)
        shutil.rmtree(work, ignore_errors=True)
        print(f"{checks.passed} checks passed")
        return
    if not args.server_binary:
        p.error("--server-binary is needed unless --reference-only")

    from elliptical_client import Client, ClientError
    sys.path.insert(0, os.path.join(HERE, "..", "support"))
    from server import start_server, stop_server

    # float32 whatever the machine: the tolerances are float32 arguments, and the shipped kjv-lm's
    # dtype is auto (bfloat16 on an AMX CPU).
    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1", "--dtype=float32")
    try:
        client = Client(address, timeout_s=60)
        client.wait_until_serving(timeout_s=120)
        for name in names:
            check_server(client, os.path.join(repo, name), name)
        try:
            client.score("lm", "")
            check(False, "an empty text raises")
        except ClientError as e:
            check(e.code == "INVALID_ARGUMENT", f"empty text: ClientError {e.code}")
        try:
            client.score("lm", "the " * 5000)
            check(False, "a text beyond the context raises")
        except ClientError as e:
            check(e.code == "INVALID_ARGUMENT", f"text beyond the context: ClientError {e.code}")
        client.close()
    finally:
        code = stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    check(code == 0, "server exits 0 on SIGTERM")
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
