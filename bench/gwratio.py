#!/usr/bin/env python3
"""Issue 17: throughput through floodgate's gateway vs straight to the
cluster behind it, for floodgate builds side by side, with floodgate's own
CPU per GB for each cell.

Each round, for each build (the order alternates), a fresh three-broker
kfake (its own process) and floodgate in gateway mode in front of it;
then each cell runs once untimed straight to kfake (a warm-up: a fresh
kfake's first run of a cell was up to 4x slower than its second, whichever
path it took), then twice each way in the order direct, gateway, gateway,
direct (the reverse in odd rounds), which cancels a drift that is linear
in time (kfake keeps every record, and grows slower as it holds more; so
each produce run, and the last consume run of a cell, deletes its topic
with --delete-topic, which keeps kfake's heap from growing run to run):
produce (`floodgate bench kafka produce --clients 4 --acks 1`, a new topic
per run) and consume (records preloaded straight into kfake once, then
read back with `bench kafka consume --preloaded` by each run in turn).
Ratio = through / direct mean MB/s of the same round; CPU-s/GB =
floodgate's utime+stime (/proc) over the runs through it, per GB of
record values; machine busy = cores busy (/proc/stat) during each path's
runs (and, pinned, how busy the rest's CPUs were), and machine CPU-s/GB
the whole machine's (clients, kfake and floodgate) per GB. Medians over
rounds.

With --relay splice|copy a third path runs beside them: a second fresh
three-broker kfake that names a bare TCP relay's ports as its brokers
(`bench-suite peer relay`: bytes moved unread and unlimited, by splice(2)
or through a buffer), so every request goes through the relay. It is the
floor of what any proxy's hop costs on the machine: its ratio and its
CPU-s/GB (the relay process's) stand beside the gateway's.

usage: bench/gwratio.py --bench BIN --suite BIN --build NAME=BIN ... [--rounds 5] [--clients 4]
       [--case OP:SIZE:RECORDS ...]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from framecpu import Server  # noqa: E402
from procstat import cpu_s, free_ports, machine_busy_s, pin, stop, wait_port, write_runs  # noqa: E402


class Relayed:
    """A three-broker kfake whose Metadata names a bare relay's ports,
    and the relay in front of it (its own process, measured)."""

    def __init__(self, suite, mode, tmp):
        log = open(os.path.join(tmp, "relay.log"), "a")
        ports = free_ports(6)
        real, front = ports[:3], ports[3:]
        self.kfake = subprocess.Popen([suite, "peer", "kfake-cluster", ",".join(f"{p}@{a}" for p, a in zip(real, front))],
                                      stdout=subprocess.DEVNULL, stderr=log)
        self.procs = [self.kfake]
        try:
            for p in real:
                wait_port(p, self.kfake)
            self.relay = subprocess.Popen([suite, "peer", "relay", mode + ":" + ",".join(
                f"127.0.0.1:{a}>127.0.0.1:{p}" for p, a in zip(real, front))], stdout=subprocess.DEVNULL, stderr=log)
            self.procs.append(self.relay)
            for a in front:
                wait_port(a, self.relay)
        except BaseException:
            self.stop()
            raise
        self.pid, self.addr = self.relay.pid, f"127.0.0.1:{front[0]}"

    def stop(self):
        stop(self.procs)


def run(bench, op, addr, size, n, topic, preloaded=False, delete=False, pin=None, clients=4):
    cmd = (["taskset", "-c", pin] if pin else []) + [bench, "bench", "kafka", op, "--brokers", addr, "--clients", str(clients), "--record-size", str(size),
           "--records", str(n), "--topic", topic, "--json", "--quiet"]
    if op == "produce":
        cmd += ["--acks", "1"]
    if preloaded:
        cmd.append("--preloaded")
    if delete:
        cmd.append("--delete-topic")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r[0] if isinstance(r, list) else r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the floodgate binary whose `bench kafka` makes the load")
    ap.add_argument("--suite", required=True, help="bench-suite (its `peer kfake-cluster` runs kfake)")
    ap.add_argument("--build", action="append", required=True, help="NAME=floodgate binary")
    ap.add_argument("--case", action="append", help="OP:SIZE:RECORDS")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--pin-gateway", help="CPUs for floodgate (taskset list), as if it had a host of its own")
    ap.add_argument("--pin-rest", help="CPUs for kfake and the load clients, the same on both paths")
    ap.add_argument("--clients", type=int, default=4, help="load clients per run (one partition each)")
    ap.add_argument("--relay", choices=["splice", "copy"], help="also run each cell through a bare TCP relay (a second kfake)")
    o = ap.parse_args()
    cases = [(c.split(":")[0], int(c.split(":")[1]), int(c.split(":")[2])) for c in
             (o.case or ["produce:100:2000000", "produce:10000:60000", "consume:100:2000000", "consume:10000:60000"])]
    builds = [b.split("=", 1) for b in o.build]

    def rest_s():  # busy seconds of the CPUs of kfake and the clients, when pinned
        return machine_busy_s(o.pin_rest) if o.pin_rest else 0.0
    runs = {}
    tmp = tempfile.mkdtemp(prefix="gwratio-")
    try:
        for rnd in range(o.rounds):
            order = builds if rnd % 2 == 0 else builds[::-1]
            for name, binary in order:
                sv = Server("gateway", binary, o.suite, tmp)
                rl = None
                if o.pin_gateway:
                    pin(sv.pid, o.pin_gateway)
                if o.pin_rest:
                    for pr in sv.procs[:-1]:  # kfake (floodgate is the last)
                        pin(pr.pid, o.pin_rest)
                try:
                    if o.relay:
                        rl = Relayed(o.suite, o.relay, tmp)
                        if o.pin_gateway:
                            pin(rl.relay.pid, o.pin_gateway)
                        if o.pin_rest:
                            pin(rl.kfake.pid, o.pin_rest)
                    for op, size, n in cases:
                        topic = f"gr-{rnd}-{op}-{size}"
                        starts = [sv.direct] + ([rl.addr] if rl else [])
                        for addr in starts:
                            if op == "consume":
                                run(o.bench, "produce", addr, size, n, topic, pin=o.pin_rest, clients=o.clients)
                            run(o.bench, op, addr, size, n, topic if op == "consume" else f"{topic}-warm",
                                preloaded=op == "consume", delete=op == "produce", pin=o.pin_rest, clients=o.clients)
                        paths = [("direct", sv.direct, sv.pid), ("gateway", sv.addr, sv.pid)]
                        if rl:
                            paths.append(("relay", rl.addr, rl.pid))
                        res = {path: {"mbps": 0.0, "errors": 0, "cpu_s": 0.0, "busy_s": 0.0, "rest_s": 0.0, "secs": 0.0, "each": []}
                               for path, _, _ in paths}
                        if rnd % 2:
                            paths.reverse()
                        seq = paths + paths[::-1]
                        for i, (path, addr, pid) in enumerate(seq):
                            t = topic if op == "consume" else f"{topic}-{path}-{i}"
                            # A consume topic goes with its cluster's last run
                            # (the relay has a cluster of its own).
                            last = op == "produce" or all((q == "relay") != (path == "relay") for q, _, _ in seq[i + 1:])
                            c0, b0, r0, t0 = cpu_s(pid), machine_busy_s(), rest_s(), time.monotonic()
                            r = run(o.bench, op, addr, size, n, t, preloaded=op == "consume",
                                    delete=last, pin=o.pin_rest, clients=o.clients)
                            p = res[path]
                            p["each"].append(r["mb_per_s"])
                            p["mbps"] = statistics.mean(p["each"])
                            p["errors"] += r["errors"]
                            p["cpu_s"] += cpu_s(pid) - c0
                            p["busy_s"] += machine_busy_s() - b0
                            p["rest_s"] += rest_s() - r0
                            p["secs"] += time.monotonic() - t0
                        ratio = res["gateway"]["mbps"] / res["direct"]["mbps"]
                        names = [q for q in ("direct", "gateway", "relay") if q in res]

                        def busy(path):
                            return f"{res[path]['busy_s'] / res[path]['secs']:.2f}"

                        def rest_busy():
                            if not o.pin_rest:
                                return ""
                            return ", the rest's CPUs busy " + "/".join(
                                f"{res[p]['rest_s'] / res[p]['secs']:.2f}" for p in names)

                        def mgb(path):
                            return f"{res[path]['busy_s'] / (2 * n * size / 1e9):.2f}"
                        cpugb = res["gateway"]["cpu_s"] / (2 * n * size / 1e9)
                        extra = {}
                        relay = ""
                        if "relay" in res:
                            extra = {"relay_ratio": res["relay"]["mbps"] / res["direct"]["mbps"],
                                     "relay_cpu_per_gb": res["relay"]["cpu_s"] / (2 * n * size / 1e9)}
                            relay = (f"relay {res['relay']['mbps']:7.1f} MB/s ({'/'.join(f'{x:.0f}' for x in res['relay']['each'])}) = "
                                     f"{extra['relay_ratio']:.2f}x, relay {extra['relay_cpu_per_gb']:.2f} CPU-s/GB, ")
                        runs.setdefault((name, op, size), []).append({"ratio": ratio, "cpu_per_gb": cpugb, **extra, **{k: v for k, v in res.items()}})
                        print(f"round {rnd + 1} {name:8s} {op} {size:6d} B x {n}: direct {res['direct']['mbps']:7.1f} MB/s "
                              f"({'/'.join(f'{x:.0f}' for x in res['direct']['each'])}), "
                              f"gateway {res['gateway']['mbps']:7.1f} MB/s ({'/'.join(f'{x:.0f}' for x in res['gateway']['each'])}) = {ratio:.2f}x, floodgate {cpugb:.2f} CPU-s/GB, "
                              f"{relay}machine busy {'/'.join(busy(q) for q in names)} cores{rest_busy()}, "
                              f"machine CPU-s/GB {'/'.join(mgb(q) for q in names)}, "
                              f"errors {'/'.join(str(res[q]['errors']) for q in names)}, load {os.getloadavg()[0]:.1f}",
                              file=sys.stderr, flush=True)
                finally:
                    if rl:
                        rl.stop()
                    sv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_runs(o.json, runs)
    heads = [f"{name}: gateway/direct (each round), floodgate CPU-s/GB" for name, _ in builds]
    if o.relay:
        heads += [f"{name}: {o.relay} relay/direct (each round), relay CPU-s/GB" for name, _ in builds]
    print("| cell | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))

    def cell(rs, ratio, cpu):
        each = ", ".join(f"{r[ratio]:.2f}" for r in rs)
        return f"**{statistics.median(r[ratio] for r in rs):.2f}x** ({each}), {statistics.median(r[cpu] for r in rs):.2f}"
    for op, size, n in cases:
        cells = [cell(runs[(name, op, size)], "ratio", "cpu_per_gb") for name, _ in builds]
        if o.relay:
            cells += [cell(runs[(name, op, size)], "relay_ratio", "relay_cpu_per_gb") for name, _ in builds]
        print(f"| {op} {size} B x {n:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
