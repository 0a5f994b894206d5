#!/usr/bin/env python3
"""Register N users on a tollgate and log each one in; write one access token per line.

Usage: users.py BASE_URL N TOKENS_FILE [PREFIX]

Every user gets its own session (one login each), so the authenticated benchmark cycles
through N distinct sessions rather than hammering one cache entry. A thread pool keeps it
quick; a 503 `serverBusy` (no free hashing slot within `login.hash_wait`) is retried.
"""
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

BASE, N, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PREFIX = sys.argv[4] if len(sys.argv) > 4 else "u"


def post(path, body):
    data = json.dumps(body).encode()
    for attempt in range(20):
        req = urllib.request.Request(
            BASE + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 503:  # every hashing slot busy: back off and retry
                time.sleep(0.05 * (attempt + 1))
                continue
            return e.code, json.loads(e.read() or b"{}")
    raise RuntimeError(f"{path}: still 503 after retries")


def one(i):
    name = f"{PREFIX}{i:07d}"
    password = f"bench-password-{i:07d}"
    status, body = post(
        "/auth/register",
        {"username": name, "email": f"{name}@bench.invalid", "password": password},
    )
    if status not in (201, 409):  # 409: already there (re-run against the same database)
        raise RuntimeError(f"register {name}: {status} {body}")
    status, body = post("/auth/login", {"username": name, "password": password})
    if status != 200 or not body.get("access_token"):
        raise RuntimeError(f"login {name}: {status} {body}")
    return body["access_token"]


def main():
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        tokens = list(pool.map(one, range(1, N + 1)))
    with open(OUT, "w") as f:
        f.write("\n".join(tokens) + "\n")
    print(f"  {N} users registered and logged in in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
