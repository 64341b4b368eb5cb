#!/usr/bin/env python3
"""Load run over TLS on loopback: registry-rewriter against a floor server.

Builds both in release mode, makes certificates with registry-rewriter's own
generator, and drives each server with h2load (Debian's nghttp2-client) using
the AdmissionReview fixtures on keep-alive connections:

- saturation throughput, HTTP/2 and HTTP/1.1;
- latency percentiles (p50, p99, p99.9) at a fixed rate of half our
  saturation rate, from h2load's per-request log;
- the server's CPU time per request at that fixed rate (all its threads);
- new-connection throughput (a full TLS handshake per request);
- registry-rewriter's start-to-ready time, idle RSS and peak RSS.

Each measurement is repeated; rounds alternate which server goes first, and
each round's ratio compares two runs made moments apart. The table gives the
median of each server's figures and the median of the per-round ratios,
which is steadier than a ratio of medians on a noisy machine. Results go to stdout (Markdown) and to
target/bench-load/results.json.

    benches/load.py [--repeat N] [--seconds S] [--fixture FILE] [--compact]
                  [--binary FILE] [--baseline FILE]

--binary serves a prebuilt registry-rewriter instead of building one.
--baseline puts a second registry-rewriter build (say, main's, or one with a
hand-written piece swapped for a library) where the floor goes: the rounds
are then a paired A/B of the two builds, and the ratio says what the change
buys.

The fixtures are stored indented for reading; kube-apiserver sends the same
review as compact JSON. --compact sends it that way (about half the bytes).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
OUT = ROOT / "target" / "bench-load"
TLS_PORT, ADMIN_PORT, FLOOR_PORT = 18443, 18080, 18444


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs)


def wait_for_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                return
        except OSError:
            time.sleep(0.0005)
    raise RuntimeError(f"port {port} did not open")


def http_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def start_to_ready(process):
    """Milliseconds from spawn until /readyz answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < 10:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            if http_get(ADMIN_PORT, "/readyz").startswith(b"HTTP/1.1 200"):
                return (time.monotonic() - started) * 1000
        except OSError:
            pass
        time.sleep(0.0005)
    raise RuntimeError("not ready within 10 s")


def reset_peak_rss(pid):
    """Resets VmHWM so that the next reading covers one phase only."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def rss_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def h2load(port, fixture, args, log_file=None):
    cmd = ["h2load", f"https://127.0.0.1:{port}/mutate", "-d", str(fixture),
           "-H", "content-type: application/json", "-t", "1"] + args
    if log_file:
        cmd += ["--log-file", str(log_file)]
    return h2load_result(run(cmd).stdout, log_file)


def h2load_result(output, log_file=None):
    """What h2load printed, and latency percentiles from its per-request log."""
    result = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("finished in"):
            # finished in 5.00s, 12345.67 req/s, 8.90MB/s
            result["req_per_s"] = float(line.split(",")[1].split()[0])
        if line.startswith("requests:"):
            parts = line.replace(",", "").split()
            result["succeeded"] = int(parts[parts.index("succeeded") - 1])
            result["failed"] = int(parts[parts.index("failed") - 1])
            result["errored"] = int(parts[parts.index("errored") - 1])
        if line.startswith("status codes:"):
            result["status_2xx"] = int(line.split(":")[1].split()[0])
    if log_file:
        latencies = sorted(int(l.split("\t")[2]) for l in Path(log_file).read_text().splitlines() if l.strip())
        if latencies:
            pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000
            result.update(p50_ms=pick(0.50), p99_ms=pick(0.99), p999_ms=pick(0.999), samples=len(latencies))
    return result


def measure(name, port, fixture, seconds, rate, pid, track_rss):
    """One round of every load shape against one server."""
    results = {}
    if track_rss:
        reset_peak_rss(pid)
    # Saturation: HTTP/2, 4 connections x 16 streams; HTTP/1.1, 32 connections.
    results["h2_saturation"] = h2load(port, fixture, ["-D", str(seconds), "-c", "4", "-m", "16", "--warm-up-time", "1"])
    results["h1_saturation"] = h2load(port, fixture, ["--h1", "-D", str(seconds), "-c", "32", "--warm-up-time", "1"])
    if rate:
        clients = 4
        with tempfile.NamedTemporaryFile(suffix=".log") as log:
            cpu_before = cpu_seconds(pid)
            fixed = h2load(
                port, fixture, ["-D", str(seconds), "-c", str(clients), "-m", "1", f"--rps={max(1, rate // clients)}"],
                log_file=log.name)
            # What a review costs the node at a steady rate, all threads counted.
            fixed["server_cpu_us_per_req"] = (cpu_seconds(pid) - cpu_before) * 1e6 / max(1, fixed["succeeded"])
            fixed["target_rps"] = (rate // clients) * clients
            results["h2_fixed_rate"] = fixed
    if track_rss:
        results["peak_rss_keepalive_kib"] = rss_kib(pid, "VmHWM")
        reset_peak_rss(pid)
    # New connections: one request per connection, a full handshake each.
    started = time.monotonic()
    handshakes = h2load(port, fixture, ["--h1", "-n", "1000", "-c", "1000"])
    handshakes["conn_per_s"] = 1000 / (time.monotonic() - started)
    results["new_connections"] = handshakes
    if track_rss:
        results["peak_rss_1000_connections_kib"] = rss_kib(pid, "VmHWM")
    for shape, r in results.items():
        if not isinstance(r, dict):
            continue
        failures = r.get("failed", 0) + r.get("errored", 0)
        if failures:
            print(f"warning: {name} {shape}: {failures} failed requests", file=sys.stderr)
    return results


def median(rounds, *path):
    values = []
    for r in rounds:
        for key in path:
            r = r.get(key, {}) if isinstance(r, dict) else {}
        if isinstance(r, (int, float)):
            values.append(r)
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--fixture", default=str(ROOT / "tests/fixtures/pod-create-from-deployment.json"))
    parser.add_argument("--compact", action="store_true",
                        help="send the fixture as compact JSON, as kube-apiserver writes it")
    parser.add_argument("--binary", help="a prebuilt registry-rewriter to measure")
    parser.add_argument("--baseline", help="a second registry-rewriter build, in place of the floor")
    args = parser.parse_args()
    if not shutil.which("h2load"):
        sys.exit("h2load not found: apt-get install nghttp2-client")

    if not args.binary or not args.baseline:
        run(["cargo", "build", "--release", "--bin", "registry-rewriter", "--example", "floor-server"], cwd=ROOT)
    binary = Path(args.binary) if args.binary else RELEASE / "registry-rewriter"
    work = Path(tempfile.mkdtemp(prefix="registry-rewriter-load-"))
    run([binary, "certs", "--out", work, "--dns", "localhost", "--ip", "127.0.0.1"])
    fixture = Path(args.fixture)
    if args.compact:
        compact = work / ("compact-" + fixture.name)
        compact.write_text(json.dumps(json.loads(fixture.read_text()), separators=(",", ":"), ensure_ascii=False))
        fixture = compact

    def serve(executable, port, admin_port):
        return [executable, "serve", "--listen", f"127.0.0.1:{port}",
                "--admin-listen", f"127.0.0.1:{admin_port}", "--tls-cert", work / "tls.crt",
                "--tls-key", work / "tls.key", "--shutdown-delay", "0s", "--log-format", "json"]
    server = serve(binary, TLS_PORT, ADMIN_PORT)
    log = open(work / "server.log", "w")
    # Start-to-ready: the median of five cold starts; the last one stays up.
    starts = []
    for attempt in range(5):
        ours = subprocess.Popen(server, stdout=log, stderr=log)
        starts.append(start_to_ready(ours))
        if attempt < 4:
            ours.terminate()
            ours.wait(timeout=30)
    ready_ms = statistics.median(starts)
    time.sleep(1)
    idle_kib = rss_kib(ours.pid, "VmRSS")

    # The floor answers with our exact response to this fixture.
    response = subprocess.run(
        ["curl", "-sS", "--cacert", work / "ca.crt", "-H", "content-type: application/json",
         "--data-binary", f"@{fixture}", f"https://localhost:{TLS_PORT}/mutate"],
        check=True, capture_output=True).stdout
    (work / "response.json").write_bytes(response)
    if args.baseline:
        # Same fixture, same response; its logs go to their own file.
        floor = subprocess.Popen(serve(args.baseline, FLOOR_PORT, ADMIN_PORT + 1),
                                 stdout=open(work / "baseline.log", "w"), stderr=subprocess.STDOUT)
    else:
        floor = subprocess.Popen([RELEASE / "examples" / "floor-server", f"127.0.0.1:{FLOOR_PORT}",
                                  work / "tls.crt", work / "tls.key", work / "response.json"])
    wait_for_port(FLOOR_PORT)

    rounds = {"registry-rewriter": [], "floor": []}
    try:
        for i in range(args.repeat):
            # Both servers get the same offered load: half of our saturation.
            saturation = h2load(TLS_PORT, fixture, ["-D", "2", "-c", "4", "-m", "16"])["req_per_s"]
            rate = int(saturation / 2)
            order = [("floor", FLOOR_PORT), ("registry-rewriter", TLS_PORT)]
            for name, port in order if i % 2 == 0 else order[::-1]:
                is_ours = name == "registry-rewriter"
                label = "baseline" if args.baseline and not is_ours else name
                print(f"round {i + 1}/{args.repeat}: {label} (fixed rate {rate} req/s)", file=sys.stderr)
                pid = ours.pid if is_ours else floor.pid
                rounds[name].append(measure(name, port, fixture, args.seconds, rate, pid, track_rss=is_ours))
        # The first round runs before any burst of new connections; later
        # rounds start from what the allocator kept after the last burst.
        peak_kib = rounds["registry-rewriter"][0]["peak_rss_keepalive_kib"]
        after_burst_kib = median(rounds["registry-rewriter"][1:], "peak_rss_keepalive_kib")
        burst_kib = median(rounds["registry-rewriter"], "peak_rss_1000_connections_kib")
    finally:
        for process in (ours, floor):
            process.terminate()
            process.wait(timeout=30)

    summary = {"machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
               "fixture": fixture.name, "request_bytes": fixture.stat().st_size, "response_bytes": len(response),
               "repeat": args.repeat, "seconds": args.seconds,
               "start_to_ready_ms": ready_ms, "idle_rss_mib": idle_kib / 1024, "peak_rss_mib": peak_kib / 1024,
               "peak_rss_1000_connections_mib": burst_kib / 1024,
               "peak_rss_keepalive_after_burst_mib": after_burst_kib / 1024,
               "rounds": rounds}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(summary, indent=2))

    def row(label, *path, unit="", fmt="{:.0f}"):
        a, b = median(rounds["registry-rewriter"], *path), median(rounds["floor"], *path)
        paired = [{"ratio": ours / floor} for ours, floor in (
            (median([o], *path), median([f], *path)) for o, f in zip(rounds["registry-rewriter"], rounds["floor"]))
            if floor]
        ratio = median(paired, "ratio")
        print(f"| {label} | {fmt.format(a)}{unit} | {fmt.format(b)}{unit} | {ratio:.2f} |")

    print(f"\nfixture {fixture.name} ({summary['request_bytes']} B in, {len(response)} B out), "
          f"median of {args.repeat} rounds of {args.seconds} s\n")
    other = "baseline" if args.baseline else "floor"
    print(f"| measure | registry-rewriter | {other} | ratio (median of rounds) |\n|---|---|---|---|")
    row("HTTP/2 saturation (4 conns x 16 streams)", "h2_saturation", "req_per_s", unit=" req/s")
    row("HTTP/1.1 saturation (32 conns)", "h1_saturation", "req_per_s", unit=" req/s")
    row("fixed rate: achieved", "h2_fixed_rate", "req_per_s", unit=" req/s")
    row("fixed rate: p50", "h2_fixed_rate", "p50_ms", unit=" ms", fmt="{:.3f}")
    row("fixed rate: p99", "h2_fixed_rate", "p99_ms", unit=" ms", fmt="{:.3f}")
    row("fixed rate: p99.9", "h2_fixed_rate", "p999_ms", unit=" ms", fmt="{:.3f}")
    row("fixed rate: server CPU per request", "h2_fixed_rate", "server_cpu_us_per_req", unit=" µs", fmt="{:.1f}")
    row("new connections (TLS handshake each)", "new_connections", "conn_per_s", unit=" conn/s")
    print(f"\nregistry-rewriter: start to ready {ready_ms:.1f} ms, idle RSS {idle_kib / 1024:.1f} MiB, "
          f"peak RSS under keep-alive load {peak_kib / 1024:.1f} MiB, "
          f"with 1000 simultaneous new connections {burst_kib / 1024:.1f} MiB, "
          f"under keep-alive load after such bursts {after_burst_kib / 1024:.1f} MiB")
    failed = sum(r[shape].get("failed", 0) + r[shape].get("errored", 0)
                 for rs in rounds.values() for r in rs for shape in r if isinstance(r[shape], dict))
    print(f"failed requests in all runs: {failed}")


if __name__ == "__main__":
    main()
