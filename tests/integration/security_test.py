#!/usr/bin/env python3
"""TLS, mTLS, bearer tokens and /metrics basic auth, end to end: real servers on loopback with
certificates made here by `openssl`, called by the Python client, elliptical-client and
elliptical-loadgen.

    python tests/integration/security_test.py --server-binary build/server/elliptical-server \
        --client-binary build/client/elliptical-client --loadgen-binary build/client/elliptical-loadgen \
        --fixtures build/fixtures

Three servers: A (TLS, /metrics behind basic auth), B (mTLS required and tokens, on 0.0.0.0),
C (plaintext with tokens, health behind the token, reflection exempt, on 0.0.0.0); and servers
that must refuse to start on a bad flag or file.
"""
import argparse
import base64
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
# The client under test is the tree's, when its generated stubs are there (scripts/setup.sh
# installs a copy into the venv, which may predate the tree).
if os.path.isdir(os.path.join(ROOT, "client", "python", "elliptical_client", "_generated")):
    sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import grpc  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402

from elliptical_client import Client, ClientError  # noqa: E402

import checks  # noqa: E402
from checks import check  # noqa: E402
from server import fixture_repository, start_server, stop_server  # noqa: E402

TOKEN = "tok-Right_0123456789abcdef"
WRONG_TOKEN = "tok-Wrong_0123456789abcdef"
METRICS_USER, METRICS_PASSWORD = "prometheus", "scrape:secret"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certificates(d):
    """A CA; a server certificate for localhost/127.0.0.1 and a client certificate signed by it;
    a self-signed client certificate the CA never signed. EC keys: fast to make."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, cn, ext in (("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                                  "extendedKeyUsage=serverAuth\n"),
                          ("client", "test client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    openssl("req", "-x509", *key, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", "/CN=rogue",
            "-addext", "extendedKeyUsage=clientAuth", cwd=d)
    return {n: os.path.join(d, n) for n in os.listdir(d)}


def https_status(port, path, ca, cert=None, key=None, token=None):
    """The HTTP port over TLS: (status, body) of GET `path`, or (None, why) when TLS fails."""
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=20)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except (ssl.SSLError, OSError) as e:
        return None, str(e)
    finally:
        conn.close()


def expect_error(code, call, what):
    try:
        call()
    except ClientError as e:
        check(e.code == code, f"{what}: {code} (got {e.code}: {e.message[:120]})")
        return e
    check(False, f"{what}: {code} (the call succeeded)")


def run_tool(binary, *args):
    r = subprocess.run([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def reflection_list(channel, metadata=None):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          metadata=metadata, timeout=15)
    return [s.name for r in responses for s in r.list_services_response.service]


def reflection_code(channel, metadata=None):
    try:
        services = reflection_list(channel, metadata)
        return "OK" if "elliptical.v1.InferenceService" in services else "NO_SERVICE"
    except grpc.RpcError as e:
        return e.code().name


def metrics_status(port, user=None, password=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def log_of(work):
    with open(os.path.join(work, "server.log")) as f:
        return f.read()


def stop(server):
    return stop_server(server)


def check_refuses_to_start(binary, repo, work, flags, expected, what):
    """The server exits non-zero before listening, with `expected` in its log."""
    os.makedirs(work)
    try:
        r = subprocess.run([binary, f"--model_repository={repo}", "--host=127.0.0.1", "--port=0", "--metrics_port=-1",
                            *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        check(False, f"refuses to start: {what} (it was still running after 60 s)")
    check(r.returncode != 0 and expected in r.stderr,
          f"refuses to start: {what} (exit {r.returncode}; wants {expected!r} in: {r.stderr.strip()[-200:]!r})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--client-binary", required=True)
    p.add_argument("--loadgen-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="security_")
    certs_dir = os.path.join(work, "certs")
    os.makedirs(certs_dir)
    c = make_certificates(certs_dir)
    repo = fixture_repository(args.fixtures, work, names=("vit", "lm"))
    image = os.path.join(args.fixtures, "classifier", "images", "pattern_0.png")
    with open(os.path.join(work, "tokens.txt"), "w") as f:
        f.write(f"# test tokens\n\nsomeone-else-token\n  {TOKEN}  \n")
    with open(os.path.join(work, "client-token.txt"), "w") as f:
        f.write(f"# the token this client sends\n{TOKEN}\n")
    with open(os.path.join(work, "metrics-users.txt"), "w") as f:
        f.write(f"# scrapers\n{METRICS_USER}:{METRICS_PASSWORD}\n")
    tokens, client_token = os.path.join(work, "tokens.txt"), os.path.join(work, "client-token.txt")

    servers = []
    try:
        # --- servers that must not start: each fails before any model loads, naming flag and file.
        bad = os.path.join(work, "bad")
        with open(os.path.join(work, "empty-tokens.txt"), "w") as f:
            f.write("# no token here\n\n")
        with open(os.path.join(work, "garbage.pem"), "w") as f:
            f.write("not a certificate\n")
        check_refuses_to_start(args.server_binary, repo, bad + "1",
                               ["--tls_cert_file=/no/such/server.pem", f"--tls_key_file={c['server.key']}"],
                               "--tls_cert_file=/no/such/server.pem", "a missing certificate file")
        check_refuses_to_start(args.server_binary, repo, bad + "2",
                               [f"--tls_cert_file={os.path.join(work, 'garbage.pem')}", f"--tls_key_file={c['server.key']}"],
                               "no PEM certificate", "a file that is not a certificate")
        check_refuses_to_start(args.server_binary, repo, bad + "3",
                               [f"--tls_cert_file={c['server.pem']}", f"--tls_key_file={c['client.key']}"],
                               "is not the key of the certificate", "a key of another certificate")
        check_refuses_to_start(args.server_binary, repo, bad + "4",
                               [f"--tls_cert_file={c['server.pem']}", f"--tls_key_file={c['server.key']}",
                                "--tls_client_auth=require"],
                               "needs --tls_client_ca_file", "require client certificates without a CA")
        check_refuses_to_start(args.server_binary, repo, bad + "5",
                               [f"--auth_tokens_file={os.path.join(work, 'empty-tokens.txt')}"],
                               "holds no token", "a token file without tokens")
        check_refuses_to_start(args.server_binary, repo, bad + "6", ["--auth_tokens_file=/no/such/tokens.txt"],
                               "--auth_tokens_file=/no/such/tokens.txt", "a missing token file")
        check_refuses_to_start(args.server_binary, repo, bad + "7", ["--metrics_auth_file=/no/such/users.txt"],
                               "--metrics_auth_file=/no/such/users.txt", "a missing metrics users file")
        check_refuses_to_start(args.server_binary, repo, bad + "8", ["--auth_exempt=helth"],
                               "--auth_exempt", "an unknown exempt service")

        # --- the three servers start together; each is waited for through its own health.
        work_a, work_b, work_c = (os.path.join(work, n) for n in ("a", "b", "c"))
        for w in (work_a, work_b, work_c):
            os.makedirs(w)
        metrics_port_file = os.path.join(work_a, "metrics_port")
        http_port_file_a, http_port_file_b = os.path.join(work_a, "http_port"), os.path.join(work_b, "http_port")
        a, addr_a = start_server(args.server_binary, repo, work_a, "--compute_threads=1",
                                 "--http_port=0", f"--http_port_file={http_port_file_a}",
                                 f"--tls_cert_file={c['server.pem']}", f"--tls_key_file={c['server.key']}",
                                 "--metrics_port=0", f"--metrics_port_file={metrics_port_file}",
                                 f"--metrics_auth_file={os.path.join(work, 'metrics-users.txt')}")
        servers.append(a)
        b, addr_b = start_server(args.server_binary, repo, work_b, "--compute_threads=1", "--host=0.0.0.0",
                                 "--http_port=0", f"--http_port_file={http_port_file_b}",
                                 f"--tls_cert_file={c['server.pem']}", f"--tls_key_file={c['server.key']}",
                                 f"--tls_client_ca_file={c['ca.pem']}", f"--auth_tokens_file={tokens}")
        servers.append(b)
        cc, addr_c = start_server(args.server_binary, repo, work_c, "--compute_threads=1", "--host=0.0.0.0",
                                  f"--auth_tokens_file={tokens}", "--auth_exempt=reflection")
        servers.append(cc)
        port_a = addr_a.split(":")[1]

        # ================= A: TLS, no client certificates, no tokens; /metrics basic auth.
        tls_a = Client(addr_a, tls_ca=c["ca.pem"], timeout_s=30)
        tls_a.wait_until_serving(timeout_s=120)
        check(tls_a.health() == "SERVING", "A: TLS: health SERVING over TLS")
        check({m.name for m in tls_a.list_models()} == {"vit", "lm"}, "A: TLS: list_models")
        check(len(tls_a.classify("vit", [image], top_k=2)[0]) == 2, "A: TLS: classify")
        with open(c["ca.pem"], "rb") as f:
            check(Client(addr_a, tls_ca=f.read()).health() == "SERVING", "A: TLS: CA given as PEM bytes")
        check(Client(f"localhost:{port_a}", tls_ca=c["ca.pem"]).health() == "SERVING",
              "A: TLS: by host name localhost (SAN DNS)")
        expect_error("UNAVAILABLE", lambda: Client(addr_a, timeout_s=10).list_models(),
                     "A: plaintext client to the TLS port fails")
        expect_error("UNAVAILABLE", lambda: Client(addr_a, tls_ca=c["rogue.pem"], timeout_s=10).list_models(),
                     "A: a client trusting another CA refuses the server")
        check(Client(addr_a, tls_ca=c["ca.pem"], tls_server_name="localhost").health() == "SERVING",
              "A: tls_server_name=localhost (a name in the certificate) works")
        expect_error("UNAVAILABLE",
                     lambda: Client(addr_a, tls_ca=c["ca.pem"], tls_server_name="other.example", timeout_s=10).health(),
                     "A: tls_server_name not in the certificate fails")

        code, out, err = run_tool(args.client_binary, f"--server={addr_a}", f"--tls_ca_file={c['ca.pem']}",
                                  "--timeout_s=20", "models")
        check(code == 0 and "vit" in out and "lm" in out, f"A: CLI models over TLS (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_a}", f"--tls_ca_file={c['ca.pem']}",
                                  "--timeout_s=20", "--model=vit", "classify", image)
        check(code == 0 and "class" in out, f"A: CLI classify over TLS (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_a}", "--timeout_s=10", "models")
        check(code == 1 and "cannot reach" in err and "--tls_ca_file" in err,
              f"A: CLI plaintext to the TLS port fails with a TLS hint (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_a}", f"--tls_ca_file={c['ca.pem']}",
                                  "--tls_server_name=other.example", "--timeout_s=10", "models")
        check(code == 1, f"A: CLI --tls_server_name not in the certificate fails (exit {code})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_a}", "--tls_ca_file=/no/such/ca.pem", "models")
        check(code == 2 and "--tls_ca_file=/no/such/ca.pem" in err, f"A: CLI names a missing CA file (exit {code})")

        with open(metrics_port_file) as f:
            metrics_port = f.read().strip()
        status, _ = metrics_status(metrics_port)
        check(status == 401, f"A: /metrics without credentials: 401 (got {status})")
        status, _ = metrics_status(metrics_port, METRICS_USER, "wrong")
        check(status == 401, f"A: /metrics with a wrong password: 401 (got {status})")
        status, _ = metrics_status(metrics_port, "someone", METRICS_PASSWORD)
        check(status == 401, f"A: /metrics with a wrong user: 401 (got {status})")
        status, body = metrics_status(metrics_port, METRICS_USER, METRICS_PASSWORD)
        check(status == 200 and "elliptical_build_info" in body, f"A: /metrics with the right credentials: 200 (got {status})")
        # The HTTP port serves TLS with the same certificate (and refuses plaintext).
        http_a = int(open(http_port_file_a).read())
        status, body = https_status(http_a, "/v2/health/ready", c["ca.pem"])
        check(status == 200, f"A: HTTPS /v2/health/ready with the CA: 200 (got {status}: {body[:80]})")
        status, body = https_status(http_a, "/v1/models", c["ca.pem"])
        check(status == 200 and '"lm"' in body, f"A: HTTPS /v1/models (got {status})")
        status, why = https_status(http_a, "/v2/health/ready", c["rogue.pem"])
        check(status is None, f"A: HTTPS trusting another CA refuses the server ({why[:80]})")
        try:
            plain = urllib.request.urlopen(f"http://127.0.0.1:{http_a}/v2/health/ready", timeout=10).status
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            plain = None
        check(plain is None, f"A: plaintext HTTP to the TLS port gets no answer (got {plain})")
        log_a = log_of(work_a)
        check("security: TLS" in log_a and "reachable from other machines" not in log_a,
              "A: log says TLS, and no exposure warning on loopback")

        # ================= B: mTLS required, tokens, health exempt by default, on 0.0.0.0.
        mtls = dict(tls_ca=c["ca.pem"], tls_cert=c["client.pem"], tls_key=c["client.key"])
        good_b = Client(addr_b, token=TOKEN, timeout_s=30, **mtls)
        good_b.wait_until_serving(timeout_s=120)
        check({m.name for m in good_b.list_models()} == {"vit", "lm"}, "B: mTLS + token: list_models")
        check(len(good_b.classify("vit", [image], top_k=1)) == 1, "B: mTLS + token: classify")
        check(good_b.generate("lm", "Once upon", max_new_tokens=4).text() != "", "B: mTLS + token: generate")
        expect_error("UNAVAILABLE", lambda: Client(addr_b, tls_ca=c["ca.pem"], token=TOKEN, timeout_s=10).list_models(),
                     "B: no client certificate: refused")
        expect_error("UNAVAILABLE",
                     lambda: Client(addr_b, tls_ca=c["ca.pem"], tls_cert=c["rogue.pem"], tls_key=c["rogue.key"],
                                    token=TOKEN, timeout_s=10).list_models(),
                     "B: a client certificate the CA did not sign: refused")
        no_token = Client(addr_b, timeout_s=30, **mtls)
        wrong_token = Client(addr_b, token=WRONG_TOKEN, timeout_s=30, **mtls)
        for who, client in (("missing", no_token), ("wrong", wrong_token)):
            e = expect_error("UNAUTHENTICATED", client.list_models, f"B: {who} token: ListModels")
            hint = "authorization: Bearer" if who == "missing" else "not accepted"
            check(hint in e.message, f"B: {who} token: the message says what is wrong ({hint!r})")
            check(WRONG_TOKEN not in e.message, f"B: {who} token: the message does not echo the token")
            expect_error("UNAUTHENTICATED", lambda: client.classify("vit", [image]), f"B: {who} token: Classify")
            expect_error("UNAUTHENTICATED", lambda: client.generate("lm", "Once", max_new_tokens=2).text(),
                         f"B: {who} token: Generate")
        check(no_token.health() == "SERVING", "B: health answers without a token (exempt by default)")
        channel_b = grpc.secure_channel(addr_b, grpc.ssl_channel_credentials(
            open(c["ca.pem"], "rb").read(), open(c["client.key"], "rb").read(), open(c["client.pem"], "rb").read()))
        check(reflection_code(channel_b) == "UNAUTHENTICATED", "B: reflection needs the token by default")
        check(reflection_code(channel_b, [("authorization", f"Bearer {TOKEN}")]) == "OK", "B: reflection with the token")
        channel_b.close()

        mtls_flags = [f"--tls_ca_file={c['ca.pem']}", f"--tls_cert_file={c['client.pem']}",
                      f"--tls_key_file={c['client.key']}"]
        code, out, err = run_tool(args.client_binary, f"--server={addr_b}", *mtls_flags, f"--token_file={client_token}",
                                  "--timeout_s=20", "models")
        check(code == 0 and "vit" in out, f"B: CLI mTLS + --token_file: models (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_b}", *mtls_flags, f"--token={TOKEN}",
                                  "--timeout_s=20", "--max_new_tokens=4", "--model=lm", "generate", "Once upon")
        check(code == 0 and out.strip(), f"B: CLI mTLS + --token: generate (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_b}", *mtls_flags, "--timeout_s=20", "models")
        check(code == 1 and "UNAUTHENTICATED" in err and "--token_file" in err,
              f"B: CLI without a token: UNAUTHENTICATED and a hint (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_b}", *mtls_flags, f"--token={WRONG_TOKEN}",
                                  "--timeout_s=20", "--model=vit", "classify", image)
        check(code == 1 and "UNAUTHENTICATED" in err and WRONG_TOKEN not in err,
              f"B: CLI with a wrong token: UNAUTHENTICATED, token not echoed (exit {code})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_b}", f"--tls_ca_file={c['ca.pem']}",
                                  f"--token_file={client_token}", "--timeout_s=10", "models")
        check(code == 1, f"B: CLI without a client certificate fails (exit {code})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_b}", *mtls_flags, "health")
        check(code == 0 and "SERVING" in out, f"B: CLI health without a token (exit {code})")

        load = ["--rpc=classify", "--model=vit", f"--image={image}", "--requests=5", "--warmup_s=0",
                "--concurrency=2", "--progress=false", "--timeout_s=20"]
        code, out, err = run_tool(args.loadgen_binary, f"--server={addr_b}", *mtls_flags,
                                  f"--token_file={client_token}", *load)
        check(code == 0 and "UNAUTHENTICATED" not in out, f"B: loadgen with mTLS + token (exit {code}: {err.strip()[-200:]})")
        code, out, err = run_tool(args.loadgen_binary, f"--server={addr_b}", *mtls_flags, *load)
        check(code == 1 and "UNAUTHENTICATED" in out, f"B: loadgen without a token: every request UNAUTHENTICATED (exit {code})")
        # The HTTP port: the same client-certificate policy and the same tokens.
        http_b = int(open(http_port_file_b).read())
        status, body = https_status(http_b, "/v1/models", c["ca.pem"], c["client.pem"], c["client.key"], TOKEN)
        check(status == 200, f"B: HTTPS with a client certificate and the token: 200 (got {status})")
        status, body = https_status(http_b, "/v1/models", c["ca.pem"], c["client.pem"], c["client.key"])
        check(status == 401 and "invalid_api_key" in body, f"B: HTTPS without the token: 401 (got {status})")
        status, body = https_status(http_b, "/v2/health/ready", c["ca.pem"], c["client.pem"], c["client.key"])
        check(status == 200, f"B: HTTPS health without a token (health is exempt): 200 (got {status})")
        status, why = https_status(http_b, "/v2/health/ready", c["ca.pem"], token=TOKEN)
        check(status is None, f"B: HTTPS without a client certificate: refused ({why[:80]})")
        status, why = https_status(http_b, "/v2/health/ready", c["ca.pem"], c["rogue.pem"], c["rogue.key"], TOKEN)
        check(status is None, f"B: HTTPS with a certificate the CA never signed: refused ({why[:80]})")
        log_b = log_of(work_b)
        check("client certificates required" in log_b and "bearer tokens (2)" in log_b,
              "B: log summarises mTLS and the token count")
        check("reachable from other machines" not in log_b, "B: no exposure warning with TLS and tokens on 0.0.0.0")

        # ================= C: plaintext + tokens, --auth_exempt=reflection (health needs the token).
        good_c = Client(addr_c, token=TOKEN, timeout_s=30)
        good_c.wait_until_serving(timeout_s=120)
        check(good_c.health() == "SERVING", "C: plaintext + token: health")
        check({m.name for m in good_c.list_models()} == {"vit", "lm"}, "C: plaintext + token: list_models")
        check(len(good_c.classify("vit", [image])) == 1, "C: plaintext + token: classify")
        check(good_c.generate("lm", "Once upon", max_new_tokens=3).text() != "", "C: plaintext + token: generate")
        bare_c = Client(addr_c, timeout_s=30)
        expect_error("UNAUTHENTICATED", bare_c.health, "C: health needs the token when not exempt")
        expect_error("UNAUTHENTICATED", bare_c.list_models, "C: missing token: ListModels")
        expect_error("UNAUTHENTICATED", lambda: bare_c.classify("vit", [image]), "C: missing token: Classify")
        expect_error("UNAUTHENTICATED", lambda: Client(addr_c, token=WRONG_TOKEN).generate("lm", "x").text(),
                     "C: wrong token: Generate")
        channel_c = grpc.insecure_channel(addr_c)
        check(reflection_code(channel_c) == "OK", "C: reflection answers without a token (exempt)")
        channel_c.close()
        code, out, err = run_tool(args.client_binary, f"--server={addr_c}", "health")
        check(code == 1 and "UNAUTHENTICATED" in err, f"C: CLI health without a token (exit {code})")
        code, out, err = run_tool(args.client_binary, f"--server={addr_c}", f"--token_file={client_token}", "health")
        check(code == 0 and "SERVING" in out, f"C: CLI health with --token_file (exit {code})")
        warnings = [line for line in log_of(work_c).splitlines() if "reachable from other machines" in line]
        check(len(warnings) == 1 and "without TLS" in warnings[0],
              f"C: one exposure warning line on 0.0.0.0 without TLS ({warnings})")

        for client in (tls_a, good_b, no_token, wrong_token, good_c, bare_c):
            client.close()
    finally:
        codes = [stop(s) for s in servers]
        shutil.rmtree(work, ignore_errors=True)
    check(codes and all(code == 0 for code in codes), f"servers exit 0 on SIGTERM ({codes})")
    print(f"{checks.passed} checks passed")


if __name__ == "__main__":
    main()
