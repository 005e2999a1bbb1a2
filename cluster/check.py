#!/usr/bin/env python3
"""Checks the deployment files under cluster/ without a cluster, Docker or systemd.

    python3 cluster/check.py

* Kubernetes (cluster/k8s/*.yaml): every file parses (yaml.safe_load_all); every
  object has apiVersion, kind and a name in the fedkit namespace; workloads'
  selectors (and NetworkPolicies') match pod labels; every volumeMount names a volume; every
  ConfigMap, PersistentVolumeClaim and Service referenced is defined; Secrets are
  the ones cluster/k8s/secrets.sh writes; the StatefulSet's FEDKIT_CLIENTS equals
  its replicas; the kustomization lists every manifest; the TOML in the ConfigMap
  parses and uses only keys the daemons read from a configuration file.
* systemd (cluster/systemd/): the units have [Unit], [Service] and [Install],
  Restart=on-failure, a config path, and the example TOML files parse with known keys.
* cluster/Dockerfile: every local COPY source exists.

Exit status 0 when all is well, 1 with one line per problem, 3 when PyYAML is missing.
"""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("check.py: PyYAML is missing (apt-get install python3-yaml)", file=sys.stderr)
    sys.exit(3)
try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

CLUSTER = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(CLUSTER)
SECRETS = {"fedkit-server-tls", "fedkit-client-tls"}  # what secrets.sh prints
problems = []


def problem(where, text):
    problems.append(f"{os.path.relpath(where, REPO)}: {text}")


def config_keys():
    """Keys the daemons read from --config: the first string literal of every `resolve(` call."""
    keys = set()
    for root, _, files in os.walk(os.path.join(REPO, "Sources")):
        for name in files:
            if name.endswith(".swift"):
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    keys.update(re.findall(r'resolve\([^"\n]*"([a-z0-9-]+)"', f.read()))
    return keys


KEYS = config_keys()


def check_toml(where, text):
    if tomllib is None:
        return
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return problem(where, f"TOML does not parse: {e}")
    flat = {}
    for k, v in table.items():
        if isinstance(v, dict):
            flat.update(v)
        else:
            flat[k] = v
    for k in sorted(flat):
        if k.replace("_", "-") not in KEYS:
            problem(where, f"TOML key {k!r} is not read by fed-server or fed-client from a configuration file")


def pod_spec(obj):
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def check_k8s():
    k8s = os.path.join(CLUSTER, "k8s")
    manifests = sorted(f for f in os.listdir(k8s) if f.endswith(".yaml") and f != "kustomization.yaml")
    objects = []  # (file, object)
    for name in manifests:
        path = os.path.join(k8s, name)
        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            problem(path, f"YAML does not parse: {e}")
            continue
        for d in docs:
            if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") or not d.get("metadata", {}).get("name"):
                problem(path, f"an object lacks apiVersion, kind or metadata.name: {str(d)[:80]}")
                continue
            if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "fedkit":
                problem(path, f"{d['kind']}/{d['metadata']['name']} is not in namespace fedkit")
            objects.append((path, d))

    defined = {}
    for path, d in objects:
        defined.setdefault(d["kind"], set()).add(d["metadata"]["name"])

    for path, d in objects:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "ConfigMap":
            for key, text in d.get("data", {}).items():
                if key.endswith(".toml"):
                    check_toml(path, text)
        if kind == "Service":
            selector = d["spec"].get("selector", {})
            targets = [o for _, o in objects if o["kind"] in ("Deployment", "StatefulSet")
                       and selector.items() <= o["spec"]["template"]["metadata"].get("labels", {}).items()]
            if not targets:
                problem(path, f"Service {name} selects no Deployment or StatefulSet")
            for port in d["spec"].get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and not any(
                        target in [p.get("name") for c in pod_spec(o)["containers"] for p in c.get("ports", [])] for o in targets):
                    problem(path, f"Service {name} targets port {target!r}, which no selected container declares")
        if kind == "NetworkPolicy":
            selector = d["spec"]["podSelector"].get("matchLabels", {})
            if not any(selector.items() <= o["spec"]["template"]["metadata"].get("labels", {}).items()
                       for _, o in objects if o["kind"] in ("Deployment", "StatefulSet")):
                problem(path, f"NetworkPolicy {name} selects no Deployment or StatefulSet")
        if kind not in ("Deployment", "StatefulSet"):
            continue
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if not d["spec"]["selector"]["matchLabels"].items() <= labels.items():
            problem(path, f"{kind} {name}: selector does not match the pod labels")
        spec = pod_spec(d)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "configMap" in v and v["configMap"]["name"] not in defined.get("ConfigMap", ()):
                problem(path, f"{kind} {name}: ConfigMap {v['configMap']['name']} is not defined")
            if "secret" in v and v["secret"]["secretName"] not in SECRETS:
                problem(path, f"{kind} {name}: Secret {v['secret']['secretName']} is not one secrets.sh creates")
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in defined.get("PersistentVolumeClaim", ()):
                problem(path, f"{kind} {name}: PersistentVolumeClaim {v['persistentVolumeClaim']['claimName']} is not defined")
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claims:
                    problem(path, f"{kind} {name}: container {c['name']} mounts undefined volume {m['name']}")
            if not c.get("image"):
                problem(path, f"{kind} {name}: container {c['name']} has no image")
            if c.get("args", [None])[0] not in ("server", "client"):
                problem(path, f"{kind} {name}: the entrypoint's first argument must be server or client")
            if kind == "StatefulSet":
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                if env.get("FEDKIT_CLIENTS") != str(d["spec"]["replicas"]):
                    problem(path, f"StatefulSet {name}: FEDKIT_CLIENTS ({env.get('FEDKIT_CLIENTS')}) differs from replicas ({d['spec']['replicas']})")
        if kind == "StatefulSet" and d["spec"].get("serviceName") not in defined.get("Service", ()):
            problem(path, f"StatefulSet {name}: serviceName {d['spec'].get('serviceName')} is not a defined Service")

    kust = os.path.join(k8s, "kustomization.yaml")
    with open(kust, encoding="utf-8") as f:
        listed = set(yaml.safe_load(f).get("resources", []))
    for name in manifests:
        if name not in listed:
            problem(kust, f"{name} is not listed in resources")
    for name in listed - set(manifests):
        problem(kust, f"lists {name}, which does not exist")


def check_systemd():
    d = os.path.join(CLUSTER, "systemd")
    for unit in ("fed-server.service", "fed-client@.service"):
        path = os.path.join(d, unit)
        if not os.path.exists(path):
            problem(path, "missing")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for section in ("[Unit]", "[Service]", "[Install]"):
            if section not in text:
                problem(path, f"no {section} section")
        for line in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict"):
            if line not in text.splitlines():
                problem(path, f"lacks {line}")
        if "--config /etc/fedkit/" not in text or "EnvironmentFile=" not in text:
            problem(path, "ExecStart should read a config file under /etc/fedkit and an EnvironmentFile")
    for name in ("server.toml", "client.toml"):
        path = os.path.join(d, name)
        with open(path, encoding="utf-8") as f:
            check_toml(path, f.read())


def check_dockerfile():
    path = os.path.join(CLUSTER, "Dockerfile")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            words = line.split()
            if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
                for source in [w for w in words[1:-1] if not w.startswith("--")]:
                    if not os.path.exists(os.path.join(REPO, source)):
                        problem(path, f"line {number}: COPY source {source} does not exist")


check_k8s()
check_systemd()
check_dockerfile()
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"check.py: cluster/ is consistent (config keys known: {len(KEYS)})")
