"""Helpers shared by the benchmark scripts in bench/ (framecpu.py,
zerocopy.py): free loopback ports, a process's CPU seconds and peak RSS from
/proc, waiting for a server to listen, the order of interleaved rounds and
a server's life in a round."""
import contextlib, json, os, socket, subprocess, time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def free_ports(n):
    """n distinct loopback ports free a moment ago (held open together
    while chosen, so no two are the same)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_range(n):
    while True:
        first = free_port()
        if first + n > 65000:
            continue
        ok = True
        for p in range(first, first + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return first


def parse_cpus(spec):
    """The CPU numbers of a taskset-style list such as "0", "1,3" or "0-1"."""
    cpus = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def pin(pid, spec):
    """Confines every thread of process pid to the CPUs of spec (taskset)."""
    subprocess.run(["taskset", "-a", "-p", "-c", spec, str(pid)], check=True, capture_output=True)


def machine_busy_s(cpus=None):
    """CPU seconds the whole machine (or only the CPUs of cpus, a taskset
    list) spent busy (user, nice, system, irq, softirq, steal) since boot,
    from /proc/stat."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    if cpus is None:
        return _busy(lines[0].split()[1:])
    want = {f"cpu{c}" for c in parse_cpus(cpus)}
    return sum(_busy(ln.split()[1:]) for ln in lines if ln.split()[0] in want)


def _busy(fields):
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def run_measured(cmd, pid):
    """Runs a `floodgate bench ... --json` command; returns its (first)
    result and the CPU seconds process pid used meanwhile."""
    c0 = cpu_s(pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    c1 = cpu_s(pid)
    r = json.loads(out)
    if isinstance(r, list):
        r = r[0]
    return r, c1 - c0


def write_runs(path, runs, **extra):
    """Writes every run to path as JSON (nothing when path is empty): runs
    keyed by their tuple joined with "|", then the extra keys."""
    if not path:
        return
    with open(path, "w") as f:
        json.dump({"|".join(map(str, k)): v for k, v in runs.items()} | extra, f, indent=1)


def rotated(servers, rounds):
    """Yields (round, server) for every server in each of rounds rounds, each
    round starting one server later than the one before, so that no server
    always runs first (on a cold machine) or last (on a warm one)."""
    for rnd in range(rounds):
        k = rnd % len(servers)
        for server in servers[k:] + servers[:k]:
            yield rnd, server


def stop(procs):
    """Terminates procs, the last started first, and waits for each."""
    for p in reversed(procs):
        p.terminate()
        p.wait(15)


@contextlib.contextmanager
def serving(procs, pid, rss, name):
    """Runs the with-body while a started server (procs, measured as pid)
    runs; then appends its peak RSS to rss[name], read before it stops
    (/proc forgets it at exit), and stops procs, also when the body fails."""
    try:
        yield
        rss.setdefault(name, []).append(peak_rss(pid))
    finally:
        stop(procs)
