#!/usr/bin/env python3
"""Issue 17: the server's own CPU for a fixed amount of produce work, floodgate
builds side by side (e.g. before and after pooled frame buffers) and kfake.

Modes, each server fresh per round: kfake (one broker, its own process),
floodgate embedded --in-memory, floodgate embedded on disk (default fsync),
and floodgate's gateway in front of a three-broker kfake (floodgate's CPU
only: the gateway's cost). The load is `floodgate bench kafka produce
--clients 4 --acks 1` (franz-go) into a new topic per run. CPU = the
server's utime+stime from /proc/PID/stat around the run (--op consume:
records preloaded into the broker first, kfake itself in gateway mode, and
consumed with `bench kafka consume --preloaded`; CPU around the consume); CPU-s/GB = that
over the GB of record values. Peak RSS = the server's VmHWM after the
round. Rounds interleave every server (the order rotates); medians.

usage: bench/framecpu.py --bench BIN --suite BIN --build NAME=BIN ... [--rounds 3]
       [--modes kfake,memory,disk,gateway] [--case SIZE:RECORDS ...]
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, time

from procstat import cpu_s, free_port, free_range, rotated, run_measured, serving, stop, wait_port, write_runs


class Server:
    """One server under test: procs to stop, the measured pid, its address."""

    def __init__(self, mode, binary, suite, tmp):
        log = open(os.path.join(tmp, "server.log"), "a")
        self.procs = []
        self.direct = None
        if mode in ("kfake", "gateway"):
            ports = [free_port() for _ in range(1 if mode == "kfake" else 3)]
            kind = "kfake" if mode == "kfake" else "kfake-cluster"
            kf = subprocess.Popen([suite, "peer", kind, ",".join(map(str, ports))], stdout=subprocess.DEVNULL, stderr=log)
            self.procs.append(kf)
            for p in ports:
                wait_port(p, kf)
            self.pid, self.addr = kf.pid, f"127.0.0.1:{ports[0]}"
            self.direct = self.addr  # where consume preloads: the broker itself
            if mode == "kfake":
                return
            upstream = ",".join(f"127.0.0.1:{p}" for p in ports)
        kport = free_port()
        cmd = [binary, "serve", "--kafka-listen", f"127.0.0.1:{kport}", "--http-listen", f"127.0.0.1:{free_port()}",
               "--log-level", "warn"]
        if mode == "memory":
            cmd.append("--in-memory")
        elif mode == "disk":
            cmd += ["--data-dir", tempfile.mkdtemp(dir=tmp)]
        elif mode == "gateway":
            first = free_range(8)
            cmd += ["--in-memory", "--upstream-brokers", upstream, "--gateway-listen-ports", f"{first}-{first + 7}",
                    "--gateway-advertised-host", "127.0.0.1"]
        fg = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        self.procs.append(fg)
        wait_port(kport, fg)
        self.pid, self.addr = fg.pid, f"127.0.0.1:{kport}"
        if self.direct is None:
            self.direct = self.addr

    def stop(self):
        stop(self.procs)


def produce(bench, addr, size, records, topic, pid):
    cmd = [bench, "bench", "kafka", "produce", "--brokers", addr, "--clients", "4", "--record-size", str(size),
           "--records", str(records), "--acks", "1", "--topic", topic, "--json", "--quiet"]
    r, cpu = run_measured(cmd, pid)
    return {"mbps": r["mb_per_s"], "cpu_s": cpu, "cpu_per_gb": cpu / (records * size / 1e9), "errors": r["errors"]}


def consume(bench, sv, size, records, topic):
    """Preloads records straight into the broker (kfake behind a gateway, so
    the gateway's CPU counts the consume only), then consumes them through
    sv.addr; CPU is the server's during the consume."""
    base = [bench, "bench", "kafka", "produce", "--clients", "4", "--record-size", str(size), "--records", str(records),
            "--acks", "1", "--topic", topic, "--json", "--quiet"]
    subprocess.run(base[:3] + ["produce", "--brokers", sv.direct] + base[4:], check=True, capture_output=True)
    cmd = [bench, "bench", "kafka", "consume", "--brokers", sv.addr, "--clients", "4", "--record-size", str(size),
           "--records", str(records), "--topic", topic, "--preloaded", "--json", "--quiet"]
    c0 = cpu_s(sv.pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    cpu = cpu_s(sv.pid) - c0
    r = json.loads(out)
    if isinstance(r, list):
        r = r[0]
    return {"mbps": r["mb_per_s"], "cpu_s": cpu, "cpu_per_gb": cpu / (records * size / 1e9), "errors": r["errors"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the floodgate binary whose `bench kafka` makes the load")
    ap.add_argument("--suite", required=True, help="bench-suite (its `peer kfake` runs kfake)")
    ap.add_argument("--build", action="append", required=True, help="NAME=floodgate binary")
    ap.add_argument("--modes", default="kfake,memory,disk,gateway")
    ap.add_argument("--case", action="append", help="SIZE:RECORDS (default 10000:30000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--op", default="produce", choices=["produce", "consume"],
                    help="consume: preload into the broker (kfake directly in gateway mode), then measure the consume")
    o = ap.parse_args()
    cases = [tuple(map(int, c.split(":"))) for c in (o.case or ["10000:30000"])]
    builds = [b.split("=", 1) for b in o.build]
    servers = []
    for mode in o.modes.split(","):
        if mode == "kfake":
            servers.append(("kfake", mode, None))
        else:
            servers += [(f"{mode} {name}", mode, binary) for name, binary in builds]
    runs, rss = {}, {}
    with tempfile.TemporaryDirectory(prefix="framecpu-", ignore_cleanup_errors=True) as tmp:
        for rnd, (name, mode, binary) in rotated(servers, o.rounds):
            sv = Server(mode, binary, o.suite, tmp)
            with serving(sv.procs, sv.pid, rss, name):
                for size, n in cases:
                    if o.op == "consume":
                        r = consume(o.bench, sv, size, n, f"fc-{rnd}-{size}")
                    else:
                        r = produce(o.bench, sv.addr, size, n, f"fc-{rnd}-{size}", sv.pid)
                    runs.setdefault((name, size), []).append(r)
                    print(f"round {rnd + 1} {name:22s} {size:6d} B x {n}: {r['mbps']:8.1f} MB/s {r['cpu_s']:6.2f} CPU-s "
                          f"{r['cpu_per_gb']:5.2f} CPU-s/GB errors {r['errors']} load {os.getloadavg()[0]:.1f}",
                          file=sys.stderr, flush=True)
    write_runs(o.json, runs, rss=rss)
    print("| server | " + " | ".join(f"{o.op} {s} B x {n:,}: CPU-s, CPU-s/GB, MB/s" for s, n in cases) + " | peak RSS |")
    print("|---|" + "---|" * len(cases) + "---|")
    for name, _, _ in servers:
        cells = []
        for size, _ in cases:
            rs = runs[(name, size)]
            cells.append(f"{statistics.median(r['cpu_s'] for r in rs):.2f} s, {statistics.median(r['cpu_per_gb'] for r in rs):.2f}, "
                         f"{statistics.median(r['mbps'] for r in rs):,.0f}")
        print(f"| {name} | " + " | ".join(cells) + f" | {statistics.median(rss[name]) / 2**20:,.0f} MB |")


if __name__ == "__main__":
    main()
