"""`helm test`: the operator answers (/healthz, /metrics through its Service) and its CRDs are
Established. Runs in the operator's image (Python's standard library only); every argument comes from
the environment the test pod sets. Exit 0: passed; 1: what failed, one line each."""

import json
import os
import ssl
import sys
import time
import urllib.request

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE = os.environ["CO_SERVICE"]  # host of the operator's Service
METRICS_PORT, HEALTHZ_PORT = os.environ["CO_METRICS_PORT"], os.environ.get("CO_HEALTHZ_PORT", "8081")
CRDS = [c for c in os.environ["CO_CRDS"].split(",") if c]
DEADLINE = time.monotonic() + float(os.environ.get("CO_TIMEOUT_SECONDS", "120"))
API = os.environ.get("CO_API") or "https://{}:{}".format(
    os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc"),
    os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
)


def get(url, headers=None, context=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10, context=context) as r:
        return r.status, r.read().decode("utf-8", "replace")


def until(what, check):
    """check() returns None when it holds, else why not; retried until the deadline (the Service
    spreads requests over replicas, and only the acting one serves /metrics)."""
    why = "not tried"
    while True:
        try:
            why = check()
        except Exception as e:  # connection refused, timeouts, HTTP errors: retried
            why = f"{type(e).__name__}: {e}"
        if why is None:
            print(f"ok: {what}")
            return True
        if time.monotonic() > DEADLINE:
            print(f"FAILED: {what}: {why}")
            return False
        time.sleep(2)


def healthz():
    status, _ = get(f"http://{SERVICE}:{HEALTHZ_PORT}/healthz")
    return None if status == 200 else f"HTTP {status}"


def metrics():
    status, body = get(f"http://{SERVICE}:{METRICS_PORT}/metrics")
    if status != 200:
        return f"HTTP {status}"
    if "campaign_operator_api_requests" not in body:
        return "no campaign_operator_api_requests in /metrics"
    return None


def crd(name):
    def check():
        with open(os.environ.get("CO_TOKEN_FILE", f"{SA}/token")) as f:
            token = f.read().strip()
        context = ssl.create_default_context(cafile=os.environ.get("CO_CA_FILE", f"{SA}/ca.crt"))
        url = f"{API}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        _, body = get(url, {"Authorization": f"Bearer {token}"}, context)
        conditions = {
            c["type"]: c["status"] for c in json.loads(body).get("status", {}).get("conditions", [])
        }
        return None if conditions.get("Established") == "True" else f"not Established: {conditions}"

    return check


results = [
    until(f"/healthz on {SERVICE}:{HEALTHZ_PORT}", healthz),
    until(f"/metrics on {SERVICE}:{METRICS_PORT}", metrics),
    *[until(f"CRD {name} Established", crd(name)) for name in CRDS],
]
if not CRDS:
    print("FAILED: no CRDs named in CO_CRDS")
sys.exit(0 if all(results) and CRDS else 1)
