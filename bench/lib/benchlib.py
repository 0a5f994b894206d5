#!/usr/bin/env python3
"""Small helpers for bench/run.sh. Subcommands:

  ports N                    print N free TCP ports on 127.0.0.1, one per line
  cpu PID...                 utime+stime of the processes, in clock ticks, summed
  rss PID...                 VmRSS of the processes, in KiB, summed
  snap PROXY AUX OURS        CPU/RSS/preemption snapshot around a run (pid lists as single arguments)
  busy SECONDS               percent of the machine's CPU busy over SECONDS
  wrkjson LOG                the BENCH_JSON object wrk's done hook printed into LOG
  record JSONL key=value...  append one measured run (parses the wrk log named by wrk_log=)
  metric URL NAME LABELS     sum of an OpenMetrics sample, e.g. tollgate_requests_total 'route="none",status="200"'
  meta FILE key=value...     write the run's metadata
  loginsum DIR SLOTS [CPU]   DIR/login.json from the login / quiet / flood runs
  sessionsum DIR BEFORE_KIB POINTS HOW   DIR/sessions.json (with extrapolation to 1M if needed)
  summarize DIR              tables on stdout and DIR/latest.json; exit 3 if a measured
                             proxied run saw errors or non-2xx responses
"""
import json
import os
import socket
import statistics
import sys
import urllib.request

# A measured run in which at least this share of the machine's CPU time was stolen (the
# vCPU ready to run but not running: the host busy with other guests, or slow to wake a
# halted vCPU) is named under the results: its figures say more about the host.
STEAL_NOTE_PCT = 5.0

CONTENDERS = {
    "a": "upstream direct (nginx return 200)",
    "b": "nginx proxy_pass",
    "c": "nginx + auth_request",
    "d": "tollgate, public route",
    "e": "tollgate, authenticated route",
}


def ports(n):
    # Bind them all before closing any, so the N ports are distinct.
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
        s.close()


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            # comm (field 2) may hold spaces; everything after the last ')' is fixed-format.
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 overall)
    return total


def status_value(path, key):
    """The number after `key:` in a /proc status file (0 when the line is absent)."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pids):
    return sum(status_value(f"/proc/{pid}/status", "VmRSS") for pid in pids)


def preemptions(pids):
    """Involuntary context switches of every thread of `pids`: how often another task took
    the CPU from them. A thread that ends takes its count with it, so a delta can come out
    a little low when the proxy's idle helper threads exit during a run."""
    total = 0
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                total += status_value(f"/proc/{pid}/task/{task}/status",
                                      "nonvoluntary_ctxt_switches")
            except OSError:
                pass  # the thread ended between the listing and the read
    return total


def snap(proxy, aux, ours):
    """proxy ticks, aux ticks, all-our-servers ticks, machine busy ticks, steal ticks,
    proxy RSS KiB, proxy preemptions: one line, taken around each measured run."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq (not idle/iowait)
    steal = v[7] if len(v) > 7 else 0
    aux_ticks = cpu_ticks(aux.split()) if aux.strip() else -1
    print(cpu_ticks(proxy.split()), aux_ticks, cpu_ticks(ours.split()), busy, steal,
          rss_kib(proxy.split()), preemptions(proxy.split()))


def busy(seconds):
    """Percent of the machine's CPU busy (user+nice+system+irq+softirq) over `seconds`."""
    import time

    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[0] + v[1] + v[2] + v[5] + v[6], sum(v[:8])

    b0, t0 = sample()
    time.sleep(float(seconds))
    b1, t1 = sample()
    print(round((b1 - b0) * 100 / max(t1 - t0, 1)))


def wrkjson(path):
    with open(path) as f:
        for line in f:
            if line.startswith("BENCH_JSON "):
                return json.loads(line[len("BENCH_JSON "):])
    raise SystemExit(f"{path}: wrk printed no BENCH_JSON line (did wrk fail?)")


def errors_of(w):
    errs = sum(w[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return errs + max(w.get("bad_status", -1), 0)


def record(path, pairs):
    rec = dict(p.split("=", 1) for p in pairs)
    wrk_log = rec.pop("wrk_log")
    w = wrkjson(wrk_log)
    if "snap_before" in rec:
        b = [int(x) for x in rec.pop("snap_before").split()]
        a = [int(x) for x in rec.pop("snap_after").split()]
        rec["cpu_before"], rec["cpu_after"], rec["rss_kib"] = b[0], a[0], a[5]
        if len(a) > 6 and w["requests"]:
            rec["preempted_per_req"] = max(a[6] - b[6], 0) / w["requests"]
        if b[1] >= 0:
            rec["aux_cpu_before"], rec["aux_cpu_after"] = b[1], a[1]
        tck, secs, ncpu = int(rec["clk_tck"]), w["duration_us"] / 1e6, int(rec.pop("ncpu"))
        try:
            with open(wrk_log + ".time") as f:
                wrk_cpu = sum(float(x) for x in f.read().split())
        except (OSError, ValueError):
            wrk_cpu = 0.0
        rec["wrk_cpu_s"] = wrk_cpu
        # Busy CPU of the whole machine that was neither our servers nor wrk, as a share of
        # the machine (ncpu x run time); and steal (the host running other guests).
        foreign = ((a[3] - b[3]) - (a[2] - b[2])) / tck - wrk_cpu
        rec["foreign_cpu_pct"] = max(foreign, 0.0) / (secs * ncpu) * 100 if secs else 0.0
        rec["steal_pct"] = (a[4] - b[4]) / tck / (secs * ncpu) * 100 if secs else 0.0
    for k in ("conns", "rep", "cpu_before", "cpu_after", "rss_kib", "clk_tck"):
        if k in rec:
            rec[k] = int(rec[k])
    if "signed_before" in rec:
        rec["tokens_signed"] = int(rec.pop("signed_after")) - int(rec.pop("signed_before"))
    secs = w["duration_us"] / 1e6
    rec.update(w)
    rec["rps"] = w["requests"] / secs if secs else 0.0
    rec["errors"] = errors_of(w)
    for k in ("aux_cpu_before", "aux_cpu_after"):
        if k in rec:
            rec[k] = int(rec[k])
    if "cpu_before" in rec and w["requests"]:
        ticks = rec["cpu_after"] - rec["cpu_before"]
        rec["cpu_us_per_req"] = ticks * 1e6 / rec["clk_tck"] / w["requests"]
    if "aux_cpu_before" in rec and w["requests"]:
        ticks = rec["aux_cpu_after"] - rec["aux_cpu_before"]
        rec["aux_cpu_us_per_req"] = ticks * 1e6 / rec["clk_tck"] / w["requests"]
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    line = (f"  {rec.get('contender', '?')} c={rec.get('conns', '?'):>3} rep {rec.get('rep', '?')}: "
            f"{rec['rps']:>9.0f} req/s  p50 {w['p50_us']:>6} us  p99 {w['p99_us']:>6} us")
    if "cpu_us_per_req" in rec:
        line += f"  cpu {rec['cpu_us_per_req']:6.1f} us/req"
    if "aux_cpu_us_per_req" in rec:
        line += f" (+{rec['aux_cpu_us_per_req']:.1f} auth server)"
    if "rss_kib" in rec:
        line += f"  rss {rec['rss_kib'] / 1024:6.1f} MiB"
    if "preempted_per_req" in rec:
        line += f"  preempted {rec['preempted_per_req']:.2f}/req"
    if rec.get("wrk_cpu_s") and secs:
        line += f"  wrk {rec['wrk_cpu_s'] / secs * 100:3.0f}%"
    if "foreign_cpu_pct" in rec:
        line += f"  other {rec['foreign_cpu_pct']:4.1f}%"
    if "tokens_signed" in rec:
        line += f"  signed {rec['tokens_signed']}"
    if rec["errors"]:
        line += (f"  ERRORS: status>=400 {w['err_status']}, non-2xx {w.get('bad_status')}, "
                 f"connect {w['err_connect']}, read {w['err_read']}, write {w['err_write']}, "
                 f"timeout {w['err_timeout']}")
    print(line, flush=True)


def metric(url, name, labels):
    """Sum of the samples of `name` whose label set contains every label in `labels`."""
    want = [l for l in labels.split(",") if l]
    total = 0.0
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            lab = head[len(name):]
            if lab and not lab.startswith("{"):
                continue  # another metric whose name starts with this one
            if all(l in lab for l in want):
                total += float(value)
    print(int(total))


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def summarize(d):
    meta = load_json(os.path.join(d, "meta.json")) or {}
    runs = []
    if os.path.exists(os.path.join(d, "runs.jsonl")):
        with open(os.path.join(d, "runs.jsonl")) as f:
            runs = [json.loads(l) for l in f if l.strip()]
    matrix = [r for r in runs if r.get("phase") == "matrix"]
    conns = sorted({r["conns"] for r in matrix})
    medians = {}
    for c in CONTENDERS:
        for n in conns:
            rs = [r for r in matrix if r["contender"] == c and r["conns"] == n]
            if not rs:
                continue
            medians[f"{c}/{n}"] = {
                "contender": c, "conns": n, "repetitions": len(rs),
                "rps": med([r["rps"] for r in rs]),
                "p50_us": med([r["p50_us"] for r in rs]),
                "p99_us": med([r["p99_us"] for r in rs]),
                "cpu_us_per_req": med([r.get("cpu_us_per_req") for r in rs]),
                "aux_cpu_us_per_req": med([r.get("aux_cpu_us_per_req") for r in rs]),
                "rss_mib": med([r["rss_kib"] / 1024 for r in rs]),
                "preempted_per_req": med([r.get("preempted_per_req") for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "other_cpu_pct_max": max((r.get("foreign_cpu_pct", 0) for r in rs), default=0),
                "steal_pct_max": max((r.get("steal_pct", 0) for r in rs), default=0),
                # How busy the client was: its CPU time over the run's length (one thread).
                "wrk_cpu_pct": med([r["wrk_cpu_s"] / (r["duration_us"] / 1e6) * 100
                                    for r in rs if r.get("wrk_cpu_s") and r.get("duration_us")]),
                "tokens_signed": [r["tokens_signed"] for r in rs if "tokens_signed" in r],
            }

    out = []
    # With no matrix in the run (BENCH_PARTS), its lines go nowhere.
    p = out.append if matrix else (lambda line: None)
    p("")
    p(f"Medians of {meta.get('reps', '?')} runs of {meta.get('duration_s', '?')} s each "
      f"(after a {meta.get('warmup_s', '?')} s warm-up), HTTP/1.1 keep-alive, wrk -t1.")
    p("Pinning: " + meta.get("pinning", "?") + ".")
    p("Idle vCPUs poll before halting (guest_halt_poll_ns): " + meta.get("halt_poll", "?") + ".")
    p("tollgate build: " + meta.get("tollgate_build", "?") + ".")
    p("cpu/req and RSS are of the proxy under test (for a: of the upstream nginx itself).")
    p("wrk CPU %: the load generator's CPU time over the run's length (median); well under 100 "
      "means the client was not what limited the run.")
    p("other / steal %: the most, over the repetitions, of the machine's CPU used by anything "
      "but our servers and wrk (includes unattributed kernel work, so ~2-5% is the floor), "
      "and of CPU time stolen by the hypervisor.")
    p("")
    p("| contender | conns | req/s | p50 µs | p99 µs | CPU µs/req | RSS MiB | errors | wrk CPU % "
      "| other / steal % |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in conns:
        for c, label in CONTENDERS.items():
            m = medians.get(f"{c}/{n}")
            if not m:
                continue
            cpu = f"{m['cpu_us_per_req']:.1f}" if m["cpu_us_per_req"] is not None else "-"
            if m["aux_cpu_us_per_req"] is not None:
                cpu += f" (+{m['aux_cpu_us_per_req']:.1f} auth)"
            wrk_pct = f"{m['wrk_cpu_pct']:.0f}" if m["wrk_cpu_pct"] is not None else "-"
            p(f"| {c}. {label} | {n} | {m['rps']:.0f} | {m['p50_us']:.0f} | {m['p99_us']:.0f} "
              f"| {cpu} | {m['rss_mib']:.1f} | {m['errors']} "
              f"| {wrk_pct} | {m['other_cpu_pct_max']:.1f} / {m['steal_pct_max']:.1f} |")

    # How often the proxy lost its CPU mid-run, per request: where the proxy shares a CPU
    # with the upstream, each time is a switch to another process and back.
    pre = {n: [(c, medians[f"{c}/{n}"]["preempted_per_req"]) for c in CONTENDERS
               if medians.get(f"{c}/{n}", {}).get("preempted_per_req") is not None]
           for n in conns}
    if any(pre.values()):
        p("")
        p("Times the proxy was preempted per request (involuntary context switches, median): "
          + "; ".join(f"{n} conns: " + ", ".join(f"{c} {v:.2f}" for c, v in row)
                      for n, row in pre.items() if row) + ".")

    signed = [(n, medians[f"e/{n}"]["tokens_signed"]) for n in conns
              if medians.get(f"e/{n}", {}).get("tokens_signed")]
    if signed:
        p("")
        p("Access tokens e signed during its runs (RS256; each session's token is re-signed "
          "once per reissue_interval, 60 s): "
          + "; ".join(f"{n} conns: {', '.join(str(v) for v in vs)}" for n, vs in signed) + ".")

    ratios = {}
    p("")
    p("| conns | e/a | e/b | e/c | e/d |")
    p("|---:|---:|---:|---:|---:|")
    for n in conns:
        e = medians.get(f"e/{n}")
        row = {}
        for o in "abcd":
            m = medians.get(f"{o}/{n}")
            row[f"e/{o}"] = e["rps"] / m["rps"] if e and m and m["rps"] else None
        ratios[str(n)] = row
        p(f"| {n} | " + " | ".join(f"{v:.2f}" if v is not None else "-" for v in row.values()) + " |")

    # The contenders of one repetition run back to back, so a ratio within a repetition is
    # spared most of the host's changes of speed, which the medians above are not: a
    # verdict holds only if these agree with it.
    per_rep = {}
    for n in conns:
        reps = sorted({r["rep"] for r in matrix if r["conns"] == n})
        one = {(r["contender"], r["rep"]): r for r in matrix if r["conns"] == n}
        per_rep[str(n)] = {
            f"e/{o}": [one[("e", k)]["rps"] / one[(o, k)]["rps"] for k in reps
                       if ("e", k) in one and (o, k) in one and one[(o, k)]["rps"]]
            for o in "bcd"}
    if any(v for row in per_rep.values() for v in row.values()):
        p("")
        p("The same ratios within each repetition (repetitions 1, 2, 3...; contenders of a "
          "repetition run back to back):")
        p("")
        p("| conns | e/b | e/c | e/d |")
        p("|---:|---|---|---|")
        for n, row in per_rep.items():
            p(f"| {n} | " + " | ".join(", ".join(f"{v:.2f}" for v in vs) or "-"
                                       for vs in row.values()) + " |")
    p = out.append

    added = {}
    if all(f"{c}/1" in medians for c in "ade"):
        a50 = medians["a/1"]["p50_us"]
        added = {"e_minus_a_p50_us": medians["e/1"]["p50_us"] - a50,
                 "d_minus_a_p50_us": medians["d/1"]["p50_us"] - a50}
        p("")
        p(f"p50 added over direct at 1 connection: e − a = {added['e_minus_a_p50_us']:.0f} µs, "
          f"d − a = {added['d_minus_a_p50_us']:.0f} µs")

    same = {}
    for c in CONTENDERS:
        rs = [r for r in runs if r.get("phase") == "samecore" and r["contender"] == c]
        if rs:
            same[c] = {"rps": med([r["rps"] for r in rs]), "p50_us": med([r["p50_us"] for r in rs]),
                       "p99_us": med([r["p99_us"] for r in rs]),
                       "cpu_us_per_req": med([r.get("cpu_us_per_req") for r in rs]),
                       "aux_cpu_us_per_req": med([r.get("aux_cpu_us_per_req") for r in rs]),
                       "errors": sum(r["errors"] for r in rs)}
    if same:
        p("")
        p("Supplement: 1 connection, every process (wrk, upstream, proxy) on CPU 0 — no "
          "cross-vCPU wake-ups:")
        p("| contender | req/s | p50 µs | p99 µs | CPU µs/req | p50 − a.p50 µs | errors |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for c, m in same.items():
            m["p50_added_us"] = m["p50_us"] - same["a"]["p50_us"] if "a" in same else None
            cpu = f"{m['cpu_us_per_req']:.1f}" if m["cpu_us_per_req"] is not None else "-"
            if m["aux_cpu_us_per_req"] is not None:
                cpu += f" (+{m['aux_cpu_us_per_req']:.1f} auth)"
            add = f"{m['p50_added_us']:.0f}" if m["p50_added_us"] is not None else "-"
            p(f"| {c}. {CONTENDERS[c]} | {m['rps']:.0f} | {m['p50_us']:.0f} | {m['p99_us']:.0f} "
              f"| {cpu} | {add} | {m['errors']} |")

    sessions = load_json(os.path.join(d, "sessions.json"))
    if sessions:
        p("")
        p("Sessions in memory (tollgate RSS; " + sessions["how"] + "):")
        p("| sessions | RSS MiB | (RSS − idle RSS) / sessions, bytes |")
        p("|---:|---:|---:|")
        p(f"| 0 (idle, 1 user) | {sessions['rss_before_kib'] / 1024:.1f} | - |")
        for pt in sessions["points"]:
            p(f"| {pt['sessions']} | {pt['rss_kib'] / 1024:.1f} | {pt['bytes_per_session']:.0f} |")
        alive = sessions.get("oldest_session_status")
        if alive is None:
            p("the first session's token after the fill: not checked (run predates the check)")
        else:
            p(f"the first session's token after the fill: {alive}"
              + (" (still live: nothing was evicted)" if alive == "200" else " — SESSIONS WERE LOST"))
        if sessions["marginal_bytes_per_session"] is not None:
            p(f"marginal cost (least-squares slope through the points): "
              f"{sessions['marginal_bytes_per_session']:.0f} bytes/session")
        if sessions["rss_1m_mib"] is None:
            p("1,000,000 sessions: no extrapolation (the points do not rise)")
        else:
            p(f"1,000,000 sessions: {sessions['rss_1m_mib']:.0f} MiB RSS "
              f"({'MEASURED' if sessions['measured_1m'] else 'EXTRAPOLATED along the least-squares line'})")

    login = load_json(os.path.join(d, "login.json"))
    if login:
        p("")
        p("Logins at default argon2 (m=19456 KiB, t=2, p=1), tollgate on both CPUs "
          f"(max_concurrent_hashes = {login['hash_slots']}):")
        p(f"  {login['logins_per_s']:.1f} logins/s over {login['duration_s']} s "
          f"(p50 {login['p50_us'] / 1000:.1f} ms, p99 {login['p99_us'] / 1000:.1f} ms, "
          f"non-2xx/errors {login['errors']})")
        p(f"  authenticated route, 16 connections, p99: {login['p99_quiet_us']:.0f} µs quiet, "
          f"{login['p99_flood_us']:.0f} µs during a login flood → ×{login['p99_ratio']:.2f} "
          f"(req/s {login['rps_quiet']:.0f} → {login['rps_flood']:.0f})")
        kept = login.get("kept")
        if kept:
            p(f"  the same with hashing kept to CPU {kept['hash_cpus'][0]} (login.hash_cpus): "
              f"{kept['p99_quiet_us']:.0f} µs quiet, {kept['p99_flood_us']:.0f} µs during a login "
              f"flood → ×{kept['p99_ratio']:.2f} (req/s {kept['rps_quiet']:.0f} → "
              f"{kept['rps_flood']:.0f}; the flood's logins {kept['flood_logins_per_s']:.1f}/s "
              f"against {login['flood_logins_per_s']:.1f}/s)")

    targets = []

    def target(name, values, limit, ok, per_rep=None):
        met = None if not values else all(ok(v, limit) for v in values.values())
        targets.append({"target": name, "values": values, "met": met,
                        **({"per_repetition": per_rep} if per_rep else {})})

    for o, k in (("b", 1.0), ("d", 0.9), ("c", 1.5)):
        vals = {n: r[f"e/{o}"] for n, r in ratios.items() if r.get(f"e/{o}") is not None}
        reps = {n: per_rep[n][f"e/{o}"] for n in vals if per_rep.get(n, {}).get(f"e/{o}")}
        target(f"e ≥ {k}×{o} (req/s)", vals, k, lambda v, l: v >= l, reps)
    # The same ratios at 1 connection without cross-vCPU wake-ups, which on some hosts cost
    # more than the proxies themselves (BENCHMARKS.md, "Notes and caveats").
    for o, k in (("b", 1.0), ("d", 0.9), ("c", 1.5)):
        target(f"e ≥ {k}×{o} at 1 connection (supplement: all on CPU 0)",
               {"1": same["e"]["rps"] / same[o]["rps"]} if "e" in same and o in same else {},
               k, lambda v, l: v >= l)
    target("p50 added over direct ≤ 150 µs at 1 connection (pinned: wrk on CPU 0, the servers on CPU 1)",
           {"e−a µs": added["e_minus_a_p50_us"]} if added else {}, 150, lambda v, l: v <= l)
    target("p50 added over direct ≤ 150 µs at 1 connection (supplement: all on CPU 0)",
           {"e−a µs": same["e"]["p50_added_us"]} if "e" in same and "a" in same else {},
           150, lambda v, l: v <= l)
    target("1M sessions ≤ 400 MiB RSS",
           {"MiB" + ("" if sessions["measured_1m"] else " (extrapolated)"): sessions["rss_1m_mib"]}
           if sessions and sessions["rss_1m_mib"] is not None else {}, 400, lambda v, l: v <= l)
    target("proxied p99 during a login flood ≤ 2× without (hashing on any CPU)",
           {"ratio": login["p99_ratio"]} if login else {}, 2.0, lambda v, l: v <= l)
    if login and login.get("kept"):
        target(f"proxied p99 during a login flood ≤ 2× without (hashing kept to CPU "
               f"{login['kept']['hash_cpus'][0]})",
               {"ratio": login["kept"]["p99_ratio"]}, 2.0, lambda v, l: v <= l)
    p("")
    p("| target | measured | met |")
    p("|---|---|---|")
    for t in targets:
        spread = t.get("per_repetition", {})
        vals = ", ".join(f"{k}: {v:.0f}" if isinstance(v, (int, float)) and abs(v) >= 10
                         else f"{k}: {v:.2f}" + (f" ({min(spread[k]):.2f}–{max(spread[k]):.2f} "
                                                 "within repetitions)" if spread.get(k) else "")
                         for k, v in t["values"].items()) or "not measured"
        met = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        p(f"| {t['target']} | {vals} | {met} |")

    if "loadavg_at_end" not in meta:  # first summary of this run: record it with the run
        with open("/proc/loadavg") as f:
            meta["loadavg_at_end"] = " ".join(f.read().split()[:3])
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2)
    p("")
    p(f"Load average (1/5/15 min) at start: {meta.get('loadavg_at_start', '?')}, at end: "
      f"{meta['loadavg_at_end']} — the machine is shared; other work on it shows up here.")
    stolen = [r for r in runs if r.get("phase") in ("matrix", "samecore")
              and r.get("steal_pct", 0) >= STEAL_NOTE_PCT]
    if stolen:
        p("")
        p(f"Runs in which {STEAL_NOTE_PCT:.0f} % or more of the machine's CPU time was "
          "stolen (the vCPU ready but not running), so that their figures show the host "
          "more than the contender: "
          + ", ".join(f"{r['contender']} at {r['conns']} conns"
                      + (" on one CPU" if r["phase"] == "samecore" else "")
                      + f" rep {r['rep']} ({r['steal_pct']:.0f} %)" for r in stolen) + ".")
    print("\n".join(out))
    bad = [r for r in runs if r.get("phase") in ("matrix", "samecore", "quiet", "flood",
                                                 "quiet-kept", "flood-kept")
           and r["errors"]]
    result = {"meta": meta, "runs": runs, "medians": medians, "ratios_rps": ratios,
              "ratios_rps_per_repetition": per_rep,
              "samecore_1conn": same,
              "p50_added_1conn_us": added, "sessions_memory": sessions, "login": login,
              "targets": targets, "matrix_runs_with_errors": len(bad),
              "runs_with_steal": [{k: r[k] for k in ("phase", "contender", "conns", "rep",
                                                     "steal_pct")} for r in stolen]}
    with open(os.path.join(d, "latest.json"), "w") as f:
        json.dump(result, f, indent=2)
    if bad:
        print(f"\n{len(bad)} measured run(s) saw errors or non-2xx responses", file=sys.stderr)
        sys.exit(3)


def meta(path, pairs):
    with open(path, "w") as f:
        json.dump(dict(p.split("=", 1) for p in pairs), f, indent=2)


def runs_of(d, phase):
    with open(os.path.join(d, "runs.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("phase") == phase]


def flood_figures(d, sfx):
    """Quiet against flooded p99 from the `quiet<sfx>`, `flood<sfx>` and `flooder<sfx>` runs."""
    quiet, flood = runs_of(d, "quiet" + sfx), runs_of(d, "flood" + sfx)
    flooder = runs_of(d, "flooder" + sfx)
    res = {
        "p99_quiet_us": med([r["p99_us"] for r in quiet]),
        "p99_flood_us": med([r["p99_us"] for r in flood]),
        "rps_quiet": med([r["rps"] for r in quiet]),
        "rps_flood": med([r["rps"] for r in flood]),
        "flood_logins_per_s": med([(r["requests"] - r["err_status"]) / (r["duration_us"] / 1e6)
                                   for r in flooder]),
        "flood_errors": sum(r["errors"] for r in flooder),
        "quiet_errors": sum(r["errors"] for r in quiet),
        "flood_run_errors": sum(r["errors"] for r in flood),
    }
    res["p99_ratio"] = res["p99_flood_us"] / res["p99_quiet_us"]
    return res


def loginsum(d, hash_slots, kept_cpu=None):
    """login.json from the `login` run and the quiet and flooded runs (with hashing on any
    CPU, and kept to `kept_cpu` when those runs were made)."""
    login = runs_of(d, "login")[0]
    ok = login["requests"] - login["err_status"]
    res = {
        "hash_slots": int(hash_slots),
        "duration_s": round(login["duration_us"] / 1e6, 1),
        "logins_per_s": ok / (login["duration_us"] / 1e6),
        "p50_us": login["p50_us"], "p99_us": login["p99_us"], "errors": login["errors"],
        **flood_figures(d, ""),
    }
    if kept_cpu is not None and runs_of(d, "quiet-kept"):
        res["kept"] = {"hash_cpus": [int(kept_cpu)], **flood_figures(d, "-kept")}
    with open(os.path.join(d, "login.json"), "w") as f:
        json.dump(res, f, indent=2)


def sessionsum(d, before_kib, points_file, how, oldest_status="?"):
    """sessions.json from the (sessions, RSS) points; extrapolates to 1M when not reached."""
    before = int(before_kib)
    with open(points_file) as f:
        pts = [dict(zip(("sessions", "rss_kib", "elapsed_s"), map(float, l.split()))) for l in f if l.strip()]
    for pt in pts:
        pt["sessions"] = int(pt["sessions"])
        pt["bytes_per_session"] = (pt["rss_kib"] - before) * 1024 / pt["sessions"]
    last = pts[-1]
    measured = last["sessions"] >= 1_000_000
    # Least-squares line through the points: its slope is the marginal cost of a session,
    # free of the fixed costs (runtime, allocator arenas of the hashing threads, buffers)
    # that (after - before) / N spreads over the sessions.
    xs, ys = [pt["sessions"] for pt in pts], [pt["rss_kib"] * 1024 for pt in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else None
    if measured:
        rss_1m = last["rss_kib"] / 1024
    elif slope is not None and slope > 0 and len(pts) >= 2:
        rss_1m = (my + slope * (1_000_000 - mx)) / 2**20
    else:
        rss_1m = None  # too few or too close points: no honest extrapolation
    res = {"how": how, "oldest_session_status": oldest_status, "rss_before_kib": before, "points": pts, "measured_1m": measured,
           "marginal_bytes_per_session": slope, "rss_1m_mib": rss_1m}
    with open(os.path.join(d, "sessions.json"), "w") as f:
        json.dump(res, f, indent=2)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ports":
        ports(args[0])
    elif cmd == "cpu":
        print(cpu_ticks(args))
    elif cmd == "rss":
        print(rss_kib(args))
    elif cmd == "busy":
        busy(args[0])
    elif cmd == "snap":
        snap(*args)
    elif cmd == "wrkjson":
        print(json.dumps(wrkjson(args[0])))
    elif cmd == "record":
        record(args[0], args[1:])
    elif cmd == "metric":
        metric(*args)
    elif cmd == "meta":
        meta(args[0], args[1:])
    elif cmd == "loginsum":
        loginsum(*args)
    elif cmd == "sessionsum":
        sessionsum(*args)
    elif cmd == "summarize":
        summarize(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
