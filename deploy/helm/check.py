#!/usr/bin/env python3
"""Renders the Helm chart with a real Helm engine (Helm 4's SDK) for each
value set in deploy/helm/ci/, lints it, validates every manifest against
the Kubernetes schemas of two versions, runs a policy scan, and checks the
properties an operator relies on. Exits non-zero on any failure.

Needs: pip install helm-python-sdk kubernetes-validate checkov
(scripts/helm-check.sh sets that up in a virtualenv).
"""

import json
import os
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(HERE, "signaling")
CI = os.path.join(HERE, "ci")
K8S_VERSIONS = ["1.30.0", "1.33.0"]
RELEASE = "talk"
# Custom resources of the Prometheus operator: no upstream schema.
SKIP_SCHEMA = {"ServiceMonitor", "PrometheusRule"}

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def render(values):
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name=RELEASE, namespace="talk")
    docs = []
    for path, text in sorted(out.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((path, doc))
    return docs


def pods_of(docs):
    for _, d in docs:
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def secret_values(values):
    """Strings in the value set that are secrets: the values of secret
    keys in the INI texts, and the extra files."""
    out = []
    for section in ("signaling", "proxy"):
        v = values.get(section, {})
        for line in v.get("config", "").splitlines():
            key, _, val = line.partition("=")
            if key.strip() in ("hashkey", "blockkey", "internalsecret", "secret", "apikey") and val.strip():
                out.append(val.strip())
        for content in list(v.get("extraFiles", {}).values()) + list(v.get("tokenKeys", {}).values()):
            out.append(content.strip())
    return out


def check_properties(name, values, docs):
    kinds = [d["kind"] for _, d in docs]
    # Probes on the real endpoints.
    for pod, spec in pods_of(docs):
        for c in spec["containers"]:
            ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
            live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
            if ready != "/readyz" or live != "/healthz":
                fail(f"{name}: {pod}/{c['name']} probes {ready} {live}, want /readyz /healthz")
        if spec.get("automountServiceAccountToken") is not False:
            fail(f"{name}: {pod} mounts a service account token")
        psc = spec.get("securityContext", {})
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault" or not psc.get("runAsNonRoot"):
            fail(f"{name}: {pod} pod securityContext {psc}")
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{name}: {pod}/{c['name']} securityContext {sc}")
            if not c.get("resources", {}).get("limits", {}).get("memory"):
                fail(f"{name}: {pod}/{c['name']} has no memory limit")
    # The signaling pods drain before they go.
    for pod, spec in pods_of(docs):
        if pod.endswith("-proxy"):
            continue
        pre = spec["containers"][0].get("lifecycle", {}).get("preStop")
        if not pre:
            fail(f"{name}: {pod} has no preStop delay")
    # Janus outlives the proxy's drain: a native sidecar (init container
    # with restartPolicy Always), and the grace covers the drain.
    if values.get("proxy", {}).get("enabled"):
        found = False
        for pod, spec in pods_of(docs):
            if not pod.endswith("-proxy"):
                continue
            found = True
            janus = [c for c in spec.get("initContainers", []) if c["name"] == "janus"]
            if not janus or janus[0].get("restartPolicy") != "Always":
                fail(f"{name}: Janus is not a native sidecar of {pod}")
            if any(c["name"] == "janus" for c in spec["containers"]):
                fail(f"{name}: Janus is a regular container of {pod}: it would stop with the proxy")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            conf = values["proxy"].get("config", "")
            drain = [int(l.split("=")[1]) for l in conf.splitlines() if l.strip().startswith("shutdowngrace")]
            if drain and grace <= drain[0]:
                fail(f"{name}: proxy grace {grace}s does not cover shutdowngrace {drain[0]}s")
        if not found:
            fail(f"{name}: proxy enabled but no proxy workload rendered")
        if not any(d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"].endswith("-proxy") for _, d in docs):
            fail(f"{name}: no PodDisruptionBudget for the proxies")
        cms = [d for _, d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-janus")]
        ws = cms[0]["data"]["janus.transport.websockets.jcfg"] if cms else ""
        if 'ws_ip = "127.0.0.1"' not in ws:
            fail(f"{name}: Janus WebSocket API is not bound to 127.0.0.1")
    if "PodDisruptionBudget" not in kinds:
        fail(f"{name}: no PodDisruptionBudget")
    # Secrets only in Secrets.
    secrets = secret_values(values)
    for path, d in docs:
        if d["kind"] == "Secret":
            continue
        text = json.dumps(d)
        for s in secrets:
            for line in s.splitlines():
                if len(line) >= 8 and line in text:
                    fail(f"{name}: secret material in {d['kind']} {d['metadata']['name']} ({path})")


def check_schemas(name, docs):
    for version in K8S_VERSIONS:
        for path, d in docs:
            if d["kind"] in SKIP_SCHEMA:
                continue
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(f"{name}: {d['kind']} {d['metadata']['name']} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
            except Exception as e:  # noqa: BLE001 - report, do not crash
                fail(f"{name}: {d['kind']} {d['metadata']['name']} not validated for {version}: {e}")


def check_policy(name, docs):
    with tempfile.TemporaryDirectory() as tmp:
        for i, (_, d) in enumerate(docs):
            with open(os.path.join(tmp, f"{i:02d}-{d['kind']}.yaml"), "w") as f:
                yaml.safe_dump(d, f)
        out = subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "checkov"),
                "-d", tmp, "--framework", "kubernetes", "--output", "json",
                "--quiet", "--compact", "--skip-download",
                "--skip-check", ",".join(ACCEPTED),
            ],
            capture_output=True, text=True,
        )
        try:
            report = json.loads(out.stdout or "{}")
        except json.JSONDecodeError:
            fail(f"{name}: checkov output unreadable: {out.stderr[-500:]}")
            return
        reports = report if isinstance(report, list) else [report]
        for r in reports:
            for c in r.get("results", {}).get("failed_checks", []):
                sev = (c.get("severity") or "").upper()
                if sev in ("HIGH", "CRITICAL") or not sev:
                    fail(f"{name}: checkov {c['check_id']} {c['check_name']} on {c.get('resource')}")


# Checks accepted on purpose, with the reason:
ACCEPTED = [
    "CKV_K8S_14",  # image tag "latest"/not fixed: the tag is a value the operator sets
    "CKV_K8S_15",  # imagePullPolicy Always: IfNotPresent with fixed tags is intended
    "CKV_K8S_43",  # image digest: operators pin by tag or digest in values
    "CKV_K8S_19",  # hostNetwork: proxies need the node's addresses for media
    "CKV_K8S_35",  # secrets as files rather than environment: files are what we use
    "CKV_K8S_21",  # default namespace: the namespace is chosen at install
    "CKV_K8S_40",  # high UID: 10001 is the image's user
    "CKV2_K8S_6",  # NetworkPolicy for every pod: optional (networkPolicy.enabled)
    "CKV_K8S_11",  # CPU limits: throttling stalls every message of a busy node
                   # (tail latency); requests reserve the CPU instead
]


def main():
    lint = helm.lint(CHART)
    print("helm lint:", lint)
    messages = lint.get("messages", []) if isinstance(lint, dict) else []
    for m in messages:
        if str(m.get("severity", "")).upper() in ("ERROR", "2", "3"):
            fail(f"lint: {m}")
    for file in sorted(os.listdir(CI)):
        name = file.removesuffix(".yaml")
        with open(os.path.join(CI, file)) as f:
            values = yaml.safe_load(f)
        docs = render(values)
        print(f"{name}: {len(docs)} manifests: {sorted(set(d['kind'] for _, d in docs))}")
        check_properties(name, values, docs)
        check_schemas(name, docs)
        check_policy(name, docs)
    # What must not render.
    with open(os.path.join(CI, "single.yaml")) as f:
        single = yaml.safe_load(f)
    refusals = [
        ("placeholder secrets", {}, "change-me"),
        (
            "replicas with loopback NATS",
            {"signaling": {"replicas": 3, "config": single["signaling"]["config"]}},
            "[nats] url",
        ),
        ("proxies without a Janus image", {**single, "proxy": {"enabled": True}}, "janus.image"),
    ]
    for label, values, needle in refusals:
        try:
            render(values)
            fail(f"rendered despite {label}")
        except Exception as e:  # noqa: BLE001 - the render error is the result
            if needle not in str(e):
                fail(f"{label}: unexpected error {e}")
            else:
                print(f"refused as it should ({label})")
    if failures:
        print(f"{len(failures)} failures")
        sys.exit(1)
    print("chart checks passed")


if __name__ == "__main__":
    main()
