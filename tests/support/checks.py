"""Assertions of the Python integration tests: each prints ok or FAIL with what it checked, and
the first failure ends the test with exit status 1."""
passed = 0


def check(condition, what):
    global passed
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        raise SystemExit(1)
    passed += 1
