#!/usr/bin/env python3
"""Issue 17: where floodgate's CPU goes through the gateway. Starts a fresh
3-broker kfake and floodgate in gateway mode in front of it (as
framecpu.py does), then runs one produce or consume (`floodgate bench
kafka ... --clients 4`, consume preloaded straight into kfake) with perf
attached to floodgate only:

  --perf record   perf record -F 2999 -g (read it with `perf report -i OUT`)
  --perf stat     system calls and context switches (perf stat)

usage: bench/gwprof.py --bench BIN --suite BIN --build BIN --op produce|consume
       [--case SIZE:RECORDS] [--perf record|stat] --out FILE
"""
import argparse, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from framecpu import Server  # noqa: E402

STAT = ("syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_futex,"
        "syscalls:sys_enter_nanosleep,syscalls:sys_enter_epoll_pwait,context-switches")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the floodgate binary whose `bench kafka` makes the load")
    ap.add_argument("--suite", required=True, help="bench-suite (its `peer kfake-cluster` runs kfake)")
    ap.add_argument("--build", required=True, help="the floodgate binary under test")
    ap.add_argument("--op", default="produce", choices=["produce", "consume"])
    ap.add_argument("--case", default="100:3000000", help="SIZE:RECORDS")
    ap.add_argument("--perf", default="record", choices=["record", "stat"])
    ap.add_argument("--out", required=True, help="perf's output file")
    o = ap.parse_args()
    size, n = map(int, o.case.split(":"))
    tmp = tempfile.mkdtemp(prefix="gwprof-")
    sv = Server("gateway", o.build, o.suite, tmp)
    try:
        topic = f"gwprof-{o.op}-{size}"
        load = [o.bench, "bench", "kafka", "produce", "--brokers", sv.addr, "--clients", "4", "--record-size", str(size),
                "--records", str(n), "--acks", "1", "--topic", topic, "--json", "--quiet"]
        if o.op == "consume":
            pre = list(load)
            pre[pre.index("--brokers") + 1] = sv.direct
            subprocess.run(pre, check=True, capture_output=True)
            load = [o.bench, "bench", "kafka", "consume", "--brokers", sv.addr, "--clients", "4", "--record-size",
                    str(size), "--records", str(n), "--topic", topic, "--preloaded", "--json", "--quiet"]
        if o.perf == "record":
            cmd = ["perf", "record", "-F", "2999", "-g", "-p", str(sv.pid), "-o", o.out]
        else:
            cmd = ["perf", "stat", "-e", STAT, "-p", str(sv.pid), "-o", o.out]
        perf = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf attached
        out = subprocess.run(load, check=True, capture_output=True, text=True).stdout
        perf.send_signal(2)
        perf.wait()
        print(out)
    finally:
        sv.stop()


if __name__ == "__main__":
    main()
