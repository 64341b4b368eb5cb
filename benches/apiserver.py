#!/usr/bin/env python3
"""What the API server pays: Pod creations through a real API server
(kube-lite, with the real admission chain), with and without registry-rewriter.

One kube-lite server per mode runs side by side, each installed as the
README says:

- none:    nothing installed;
- webhook: manifests/base's MutatingWebhookConfiguration (caBundle filled),
           calling one `registry-rewriter serve`;
- policy:  `registry-rewriter policy | kubectl apply -f -`;
- both:    the two;
- guard:   `registry-rewriter guard | kubectl apply -f -` alone (what the
           guard costs; the "rewritten" Pods are then warned about);
- policy+guard, webhook+guard: a back end with the guard;
- webhook-floor, policy-floor: a back end whose match conditions are
           replaced by one that is true only for the probe below: what an
           unrelated Pod costs with the cheapest condition possible, the
           floor of any back end that the API server filters by condition.
- webhook-ignored, policy-ignored: a back end installed as in webhook or
           policy, with the measured namespace labelled
           registry-rewriter.k8s-lab.dev/ignore=true: what a Pod costs when
           the back end's namespaceSelector leaves it out, before any
           condition is evaluated.

The probe that checks each back end took effect runs in a namespace of its
own, so that the ignored modes can be probed too.

Each mode gets three kinds of object, created N at a time at a fixed
concurrency over kept-alive connections (h2load, Debian's nghttp2-client):

- rewritten: a 3-container Pod naming the internal registry;
- unrelated: the same Pod naming no rule registry;
- kaniko-job: manifests/examples/kaniko-build-job.yaml.

Rounds alternate the order of the modes, so that a noisy machine's drift
falls on all of them alike; within a round each kind is measured in every
mode before the next kind, after a rest of --settle seconds. Each round's
creates/s, p50 and p99 are divided by "none" measured in the same round;
the table gives the median of those ratios. Results go to stdout
(Markdown) and target/bench-apiserver/results.json.

    benches/apiserver.py [--rounds N] [--creates N] [--concurrency N] [--settle SECONDS]
                         [--modes none,webhook,...] [--binary FILE] [--kube-lite FILE]

kube-lite comes from --kube-lite, KUBE_LITE, or beside the checkout; kubectl
from KUBECTL or PATH.
"""

import argparse
import base64
import copy
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

from load import h2load_result

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench-apiserver"
MODES = ["none", "webhook", "policy", "both", "guard", "policy+guard", "webhook+guard",
         "webhook-floor", "policy-floor", "webhook-ignored", "policy-ignored"]
# The floor modes' one condition: the probe's name, and nothing read from the spec.
PROBE_ONLY = [{"name": "probe-only", "expression": "has(object.metadata.name) && object.metadata.name == 'probe'"}]
INTERNAL = "docker-registry.registry.svc.cluster.local:5000"
IGNORE = "registry-rewriter.k8s-lab.dev/ignore=true"


def run(cmd, **kwargs):
    return subprocess.run([str(c) for c in cmd], check=True, text=True, capture_output=True, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod(images):
    """A 3-container Pod (one init container), named by the server."""
    init, app, sidecar = images
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "bench-", "labels": {"app": "bench"}},
        "spec": {
            "initContainers": [{"name": "init", "image": init, "command": ["sh", "-c", "true"]}],
            "containers": [
                {"name": "app", "image": app, "args": ["--port=8080"],
                 "env": [{"name": "MODE", "value": "production"}]},
                {"name": "sidecar", "image": sidecar},
            ],
        },
    }


class KubeLite:
    def __init__(self, binary, work, name, webhook_port):
        self.dir = work / name
        self.port = free_port()
        self.token = f"bench-{name}-{self.port}"
        self.kubeconfig = self.dir / "kubeconfig"
        self.process = subprocess.Popen(
            [binary, "--data-dir", self.dir, "--secure-port", str(self.port), "--token", self.token,
             "--webhook-service", f"registry-rewriter/registry-rewriter:443=127.0.0.1:{webhook_port}"],
            stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.log", "w"))
        deadline = time.monotonic() + 60
        while not self.kubeconfig.is_file():
            if time.monotonic() > deadline or self.process.poll() is not None:
                sys.exit(f"kube-lite ({name}) did not start; see {work / (name + '.log')}")
            time.sleep(0.05)

    def kubectl(self, kubectl, *args, stdin=None):
        return run([kubectl, "--kubeconfig", self.kubeconfig, *args], input=stdin).stdout

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def h2load(server, path, body, creates, concurrency, log_file):
    cmd = ["h2load", f"https://127.0.0.1:{server.port}{path}", "-d", body, "-n", str(creates),
           "-c", str(concurrency), "-m", "1", "-t", "1", "--log-file", log_file,
           "-H", "content-type: application/json", "-H", f"authorization: Bearer {server.token}"]
    result = h2load_result(run(cmd).stdout, log_file)
    result["creates_per_s"] = result["req_per_s"]
    if result.get("status_2xx") != creates:
        sys.exit(f"only {result.get('status_2xx')} of {creates} creates succeeded at {path}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--creates", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of rest before each measurement")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated modes to measure (none is always measured)")
    parser.add_argument("--binary", help="a prebuilt registry-rewriter (default: build the release one)")
    parser.add_argument("--kube-lite", default=os.environ.get("KUBE_LITE", ROOT / "../shared/tools/kube-lite/kube-lite"))
    args = parser.parse_args()
    modes = ["none"] + [m for m in args.modes.split(",") if m and m != "none"]
    for mode in modes:
        if mode not in MODES:
            sys.exit(f"--modes: unknown mode {mode!r} (one of {', '.join(MODES)})")
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    for tool, found in [("h2load (nghttp2-client)", shutil.which("h2load")), ("kubectl", kubectl),
                        ("kube-lite", Path(args.kube_lite).is_file())]:
        if not found:
            sys.exit(f"{tool} not found")
    if not args.binary:
        run(["cargo", "build", "--release", "--bin", "registry-rewriter"], cwd=ROOT)
    binary = Path(args.binary or ROOT / "target/release/registry-rewriter")

    work = Path(tempfile.mkdtemp(prefix="registry-rewriter-apiserver-"))
    run([binary, "certs", "--out", work])
    webhook_port, admin_port = free_port(), free_port()
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{webhook_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
         "--tls-cert", work / "tls.crt", "--tls-key", work / "tls.key", "--log-format", "json",
         "--shutdown-delay", "0s"],
        stdout=open(work / "webhook.log", "w"), stderr=subprocess.STDOUT)

    servers = {}
    try:
        for mode in modes:
            servers[mode] = KubeLite(args.kube_lite, work, mode, webhook_port)

        def convert(path):
            # kubectl reads YAML; client-side, but it needs a server's discovery.
            return servers["none"].kubectl(kubectl, "create", "--dry-run=client", "-o", "json", "-f", path)

        # The base's webhook configuration, as `just deploy` fills it.
        configuration = json.loads(convert(ROOT / "manifests/base/mutatingwebhookconfiguration.yaml"))
        bundle = base64.b64encode((work / "ca.crt").read_bytes()).decode()
        for webhook in configuration["webhooks"]:
            webhook["clientConfig"]["caBundle"] = bundle
        policies = run([binary, "policy"]).stdout
        floor_configuration = copy.deepcopy(configuration)
        for webhook in floor_configuration["webhooks"]:
            webhook["matchConditions"] = PROBE_ONLY
        floor_policies = json.loads(run([binary, "policy", "-o", "json"]).stdout)
        for item in floor_policies["items"]:
            if item["kind"] == "MutatingAdmissionPolicy":
                item["spec"]["matchConditions"] = PROBE_ONLY
        guard = run([binary, "guard"]).stdout

        job = json.loads(convert(ROOT / "manifests/examples/kaniko-build-job.yaml"))
        job["metadata"].pop("name", None)
        job["metadata"].pop("namespace", None)
        job["metadata"]["generateName"] = "bench-"
        kinds = {
            "rewritten": ("/api/v1/namespaces/bench/pods",
                          pod([f"{INTERNAL}/base/init:1", f"{INTERNAL}/team/app:v1", f"{INTERNAL}/team/proxy:2"])),
            "unrelated": ("/api/v1/namespaces/bench/pods",
                          pod(["docker.io/library/busybox:1.36", "quay.io/team/app:v1", "docker.io/library/nginx:1.27"])),
            "kaniko-job": ("/apis/batch/v1/namespaces/bench/jobs", job),
        }
        bodies = {}
        for kind, (_, body) in kinds.items():
            bodies[kind] = work / f"{kind}.json"
            bodies[kind].write_text(json.dumps(body, separators=(",", ":")))

        for mode, s in servers.items():
            s.kubectl(kubectl, "create", "namespace", "bench")
            s.kubectl(kubectl, "create", "namespace", "probe")
            if mode.endswith("-ignored"):
                s.kubectl(kubectl, "label", "namespace", "bench", IGNORE)
            if mode in ("webhook", "both", "webhook+guard", "webhook-ignored"):
                s.kubectl(kubectl, "apply", "-f", "-", stdin=json.dumps(configuration))
            if mode in ("policy", "both", "policy+guard", "policy-ignored"):
                s.kubectl(kubectl, "apply", "-f", "-", stdin=policies)
            if mode.endswith("guard"):
                s.kubectl(kubectl, "apply", "-f", "-", stdin=guard)
            if mode == "webhook-floor":
                s.kubectl(kubectl, "apply", "-f", "-", stdin=json.dumps(floor_configuration))
            if mode == "policy-floor":
                s.kubectl(kubectl, "apply", "-f", "-", stdin=json.dumps(floor_policies))
        # Each back end takes effect once its informers have it: probe.
        probe = json.dumps(pod([f"{INTERNAL}/a:1"] * 3) | {"metadata": {"name": "probe"}})

        def probed(mode, s, namespace):
            done = subprocess.run([kubectl, "--kubeconfig", s.kubeconfig, "-n", namespace, "create",
                                   "--dry-run=server", "-o", "json", "-f", "-"],
                                  input=probe, capture_output=True, text=True, check=True)
            if mode == "guard":
                return "registry-rewriter-guard-images" in done.stderr
            return json.loads(done.stdout)["spec"]["containers"][0]["image"].startswith("registry.k8s-lab.dev/")

        def took_effect(mode, s):
            if not probed(mode, s, "probe"):
                return False
            # The ignored modes also wait for the label to reach the namespace informer.
            return not (mode.endswith("-ignored") and probed(mode, s, "bench"))

        for mode, s in servers.items():
            deadline = time.monotonic() + 60
            while mode != "none" and not took_effect(mode, s):
                if time.monotonic() > deadline:
                    sys.exit(f"{mode}: the back end did not take effect")
                time.sleep(0.2)
        # A warm-up, uncounted, so that every server has its caches filled.
        for s in servers.values():
            for kind, (path, _) in kinds.items():
                h2load(s, path, bodies[kind], 50, args.concurrency, work / "warmup.log")

        rounds = []
        for i in range(args.rounds):
            order = modes[i % len(modes):] + modes[:i % len(modes)]
            if i % 2:
                order.reverse()
            result = {}
            # One kind across all modes, then the next: a measurement follows
            # one of the same kind, not the costliest kind of its own mode.
            for kind, (path, _) in kinds.items():
                for mode in order:
                    print(f"round {i + 1}/{args.rounds}: {mode} {kind}", file=sys.stderr)
                    # What the last measurement left (GC, etcd's commits) is not charged to this one.
                    time.sleep(args.settle)
                    result[(mode, kind)] = h2load(servers[mode], path, bodies[kind], args.creates,
                                                  args.concurrency, work / f"{mode}-{kind}.log")
            rounds.append(result)
    finally:
        for s in servers.values():
            s.stop()
        server.terminate()
        server.wait(timeout=30)

    def ratios(mode, kind, key):
        values = [r[(mode, kind)][key] / r[("none", kind)][key] for r in rounds]
        return statistics.median(values)

    table = {}
    lines = [f"Pods created {args.creates} at a time, {args.concurrency} at once; medians over "
             f"{args.rounds} rounds of the ratio to \"none\" in the same round.", "",
             "| mode | kind | creates/s | ratio | p50 ratio | p99 ratio |", "|---|---|---:|---:|---:|---:|"]
    for mode in modes:
        for kind in kinds:
            rate = statistics.median(r[(mode, kind)]["creates_per_s"] for r in rounds)
            row = {"creates_per_s": rate,
                   "ratio": ratios(mode, kind, "creates_per_s"),
                   "p50_ratio": ratios(mode, kind, "p50_ms"),
                   "p99_ratio": ratios(mode, kind, "p99_ms")}
            table[f"{mode}/{kind}"] = row
            lines.append(f"| {mode} | {kind} | {rate:.0f} | {row['ratio']:.2f} | {row['p50_ratio']:.2f} | "
                         f"{row['p99_ratio']:.2f} |")
    OUT.mkdir(parents=True, exist_ok=True)
    raw = [{f"{m}/{k}": v for (m, k), v in r.items()} for r in rounds]
    (OUT / "results.json").write_text(json.dumps({"table": table, "rounds": raw}, indent=2))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
