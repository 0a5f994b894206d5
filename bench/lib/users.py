#!/usr/bin/env python3
"""Register N users on a tollgate and log each one in; write one access token per line.

Usage: users.py BASE_URL N TOKENS_FILE [PREFIX]

Every user gets its own session (one login each), so the authenticated benchmark cycles
through N distinct sessions rather than hammering one cache entry. A thread pool keeps it
quick; a 503 `serverBusy` (no free hashing slot within `login.hash_wait`) is retried.

With LOGIN_SPREAD_S set, the logins are spread evenly over that many seconds (after every
user is registered), as the sessions of real users start at scattered times. Each session's
token is re-signed once per `reissue_interval` counted from its login, so logins spread
over that interval spread the re-signing evenly too; logins made all at once would bring
every session's re-signing due in the same second, once a minute.
"""
import json
import os
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


def credentials(i):
    name = f"{PREFIX}{i:07d}"
    return name, f"bench-password-{i:07d}"


def register(i):
    name, password = credentials(i)
    status, body = post(
        "/auth/register",
        {"username": name, "email": f"{name}@bench.invalid", "password": password},
    )
    if status not in (201, 409):  # 409: already there (re-run against the same database)
        raise RuntimeError(f"register {name}: {status} {body}")


def login(i, at):
    """Logs user i in, not before the monotonic time `at`."""
    name, password = credentials(i)
    time.sleep(max(0.0, at - time.monotonic()))
    status, body = post("/auth/login", {"username": name, "password": password})
    if status != 200 or not body.get("access_token"):
        raise RuntimeError(f"login {name}: {status} {body}")
    return body["access_token"]


def main():
    spread = float(os.environ.get("LOGIN_SPREAD_S") or 0)
    started = time.monotonic()
    users = range(1, N + 1)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(register, users))
        first = time.monotonic()
        # Login i is due at first + i/N of the spread; the pool's workers sleep until then.
        tokens = list(pool.map(lambda i: login(i, first + spread * (i - 1) / N), users))
    with open(OUT, "w") as f:
        f.write("\n".join(tokens) + "\n")
    how = f", logins spread over {spread:g} s" if spread else ""
    print(f"  {N} users registered and logged in in {time.monotonic() - started:.1f} s{how}")


if __name__ == "__main__":
    main()
