"""Assertions of the Python integration tests: each prints ok or FAIL with what it checked, and
the first failure ends the test with exit status 1."""
import time

passed = 0


def check(condition, what):
    global passed
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        raise SystemExit(1)
    passed += 1


def expect_error(call, want_status, want_text, what):
    """call() must fail with an error whose status() holds `want_status` and whose message()
    holds `want_text`: tritonclient's InferenceServerException, over gRPC or HTTP. Any other
    exception propagates."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 -- only errors that carry a status and message are checked
        if not (callable(getattr(e, "status", None)) and callable(getattr(e, "message", None))):
            raise
        check(want_status in str(e.status()) and want_text in str(e.message()),
              f"{what}: {e.status()} {e.message()!r}")
        return
    check(False, f"{what}: no error raised")


def wait_for(condition, what, seconds=60, retry_on=()):
    """Polls condition() every 50 ms until it returns a true value, which it returns: a condition
    the server reports, never a sleep for ordering. Exceptions of the types in `retry_on` (a
    server still starting answers errors) count as not yet. A check failure after `seconds`,
    naming the last such error."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except retry_on as e:
            last = e
        time.sleep(0.05)
    check(False, f"{what} within {seconds} s" + (f" (last error: {last})" if last is not None else ""))
