#!/usr/bin/env python3
"""Issue 17: Kafka produce and consume CPU per GB, floodgate on disk (before
and after zero-copy Fetch) vs floodgate --in-memory and kfake.

Each server runs in its own process, fresh for every round; the load
generator is `floodgate bench kafka` (franz-go, acks=all idempotent, one
partition per client). A case is a produce of N records into a new topic,
then a consume of the same records from the start (--preloaded, so the
consume's CPU is the reads alone). CPU = the server's utime+stime from
/proc/PID/stat over the run, per GB of record values moved. Rounds are
interleaved (server order rotates) and medians of the rounds reported.

usage: bench/zerocopy.py --bench BIN --suite BIN --server NAME=BIN[:ARGS] ... [--rounds 3]
  a server BIN of "kfake" runs `SUITE peer kfake PORT`; otherwise
  `BIN serve --kafka-listen ... --http-listen ... ARGS` (ARGS split on spaces;
  the token DATADIR becomes a fresh directory).
"""
import argparse, contextlib, os, shutil, socket, statistics, subprocess, sys, tempfile, time

from procstat import cpu_s, free_port, rotated, run_measured, serving, wait_port, write_runs

CASES = [("100 B", 100, 2_000_000), ("10 KB", 10_000, 30_000)]


def start(spec, suite, tmp):
    """Starts a server; returns it, its broker address and its data
    directory (None when it keeps its records in memory)."""
    binary, _, args = spec.partition(":")
    kport = free_port()
    d = None
    if binary == "kfake":
        cmd = [suite, "peer", "kfake", str(kport)]
    else:
        d = tempfile.mkdtemp(dir=tmp)
        cmd = [binary, "serve", "--kafka-listen", f"127.0.0.1:{kport}", "--http-listen", f"127.0.0.1:{free_port()}",
               "--log-level", "warn"] + [d if a == "DATADIR" else a for a in args.split()]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "server.log"), "a"))
    wait_port(kport, p)
    return p, f"127.0.0.1:{kport}", (d if "DATADIR" in args.split() else None)


def bench(bin_, mode, broker, size, records, topic, pid):
    cmd = [bin_, "bench", "kafka", mode, "--brokers", broker, "--clients", "4", "--record-size", str(size),
           "--records", str(records), "--acks", "all", "--topic", topic, "--json", "--quiet"]
    if mode == "consume":
        cmd.append("--preloaded")
    r, cpu = run_measured(cmd, pid)
    gb = records * size / 1e9
    return {"mbps": r["mb_per_s"], "rps": r["records_per_s"], "cpu_per_gb": cpu / gb, "errors": r["errors"]}


@contextlib.contextmanager
def removed(data):
    """Deletes a server's data directory once it has stopped (the with
    statement's later managers exit first): left behind, every server's
    files (3 GB a round at --scale 6) stayed on the disk and in the page
    cache for the servers after it."""
    try:
        yield
    finally:
        if data:
            shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--suite", required=True)
    ap.add_argument("--server", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--scale", type=float, default=1, help="multiply the record counts (a quick check: 0.05)")
    o = ap.parse_args()
    servers = [s.split("=", 1) for s in o.server]
    runs = {}  # (server, case, mode) -> [result]
    rss = {}
    with tempfile.TemporaryDirectory(prefix="zerocopy-", ignore_cleanup_errors=True) as tmp:
        for rnd, (name, spec) in rotated(servers, o.rounds):
            p, broker, data = start(spec, o.suite, tmp)
            with removed(data), serving([p], p.pid, rss, name):
                for label, size, n in CASES:
                    n = int(n * o.scale)
                    topic = f"zc-{rnd}-{size}"
                    for mode in ("produce", "consume"):
                        r = bench(o.bench, mode, broker, size, n, topic, p.pid)
                        runs.setdefault((name, label, mode), []).append(r)
                        print(f"round {rnd+1} {name:12s} {mode:8s} {label:6s} {r['mbps']:8.1f} MB/s "
                              f"{r['rps']:11.0f} rec/s {r['cpu_per_gb']:6.2f} CPU-s/GB errors {r['errors']}",
                              file=sys.stderr, flush=True)
    write_runs(o.json, runs, rss=rss)
    names = [n for n, _ in servers]
    base = names[0]
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, _, _ in CASES:
        for mode in ("produce", "consume"):
            cells = []
            ref = statistics.median(r["mbps"] for r in runs[(base, label, mode)])
            for n in names:
                rs = runs[(n, label, mode)]
                mb = statistics.median(r["mbps"] for r in rs)
                cpu = statistics.median(r["cpu_per_gb"] for r in rs)
                ratio = "" if n == base else f" ({mb / ref:.2f}x)"
                cells.append(f"{mb:,.0f} MB/s{ratio}, {cpu:.2f} CPU-s/GB")
            print(f"| {mode} {label}, 4 clients | " + " | ".join(cells) + " |")
    print("| peak RSS | " + " | ".join(f"{max(rss[n]) / 2**20:,.0f} MB" for n in names) + " |")


if __name__ == "__main__":
    main()
