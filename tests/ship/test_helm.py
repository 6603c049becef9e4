"""The Helm chart: lint, render every variant and validate each object against the Kubernetes
schemas, hold the RBAC, probes and securityContext to what the bot needs, refuse bad values,
and install into the real kube-apiserver of tests/kube.py, which must accept every object."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import KUBE_VERSION, KubeTools, Validate

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "mlops-bot"
EXAMPLE_CONFIG = ROOT / "examples" / "mlops-bot.yaml"
RELEASE = "bot"
NAMESPACE = "mlops"

# What the bot calls, and nothing else (integrations/kubernetes.py).
ALLOWED_RULES = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get"},
    ("", "events"): {"list", "watch"},
}
CLUSTER_RULES = {("", "nodes"): {"get", "list", "watch"}, ("", "pods"): {"get", "list", "watch"}}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "http-ingress": {
        "slack": {"mode": "http"},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "bot.example.com",
            "tlsSecretName": "bot-tls",
        },
    },
    "socket-webhook-ingress": {"ingress": {"enabled": True, "host": "bot.example.com"}},
    "postgresql": {
        "store": {"type": "postgresql", "postgresql": {"existingSecret": "mlops-bot-store"}},
    },
    "replicas": {
        "replicaCount": 3,
        "store": {"type": "postgresql", "postgresql": {"existingSecret": "mlops-bot-store"}},
    },
    "two-namespaces": {
        "rbac": {"trainingNamespaces": ["ml-training", "ml-research"]},
        "serviceAccount": {"roleArn": "arn:aws:iam::123456789012:role/mlops-bot"},
    },
    "example-config-no-gpu-capacity": {
        "configYaml": EXAMPLE_CONFIG.read_text(),
        "rbac": {"gpuCapacity": False},
        "image": {
            "repository": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-bot",
            "digest": "sha256:" + "ab" * 32,
        },
    },
}


# ---- running helm ------------------------------------------------------------------------------


def tool_env(home: Path, kubeconfig: Path | None = None) -> dict[str, str]:
    """helm's config, cache and data under ``home``; no kubeconfig unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
    env |= {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}
    env["KUBECONFIG"] = str(kubeconfig) if kubeconfig else str(home / "no-kubeconfig")
    return env


def run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


class Helm:
    def __init__(self, tools: KubeTools, home: Path) -> None:
        self.tools = tools
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def values_file(self, values: dict[str, Any]) -> Path:
        path = self.home / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def __call__(
        self, *args: str, values: dict[str, Any] | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = ["-f", str(self.values_file(values))] if values else []
        return run([str(self.tools.helm), *args, *extra], tool_env(self.home, kubeconfig))

    def render(
        self, values: dict[str, Any], kube_version: str = KUBE_VERSION
    ) -> list[dict[str, Any]]:
        done = self(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
            values=values,
        )
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def helm(tools: KubeTools, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    return {name: helm.render(values) for name, values in VARIANTS.items()}


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# ---- lint and schema validation ----------------------------------------------------------------


def test_lint_strict_passes_for_every_variant(helm: Helm) -> None:
    for name, values in VARIANTS.items():
        done = helm("lint", "--strict", str(CHART), values=values)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rendered_object_is_valid_kubernetes(
    variant: str, rendered: dict[str, list[dict[str, Any]]], validate: Validate
) -> None:
    objects = rendered[variant]
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= {o["kind"] for o in objects}
    validate(objects)


def test_pdb_api_version_follows_the_cluster(helm: Helm) -> None:
    assert only(helm.render({}, "1.20.2"), "PodDisruptionBudget")["apiVersion"] == "policy/v1beta1"
    assert only(helm.render({}, "1.21.0"), "PodDisruptionBudget")["apiVersion"] == "policy/v1"


# ---- RBAC --------------------------------------------------------------------------------------


def rule_grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rbac_grants_only_what_the_bot_calls(
    variant: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    objects = rendered[variant]
    values = VARIANTS[variant]
    namespaces = values.get("rbac", {}).get("trainingNamespaces", ["ml-training"])
    roles = of_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
    for role in roles:
        assert rule_grants(role["rules"]) == ALLOWED_RULES
    cluster_roles = of_kind(objects, "ClusterRole")
    if values.get("rbac", {}).get("gpuCapacity", True):
        (cluster_role,) = cluster_roles
        assert rule_grants(cluster_role["rules"]) == CLUSTER_RULES
    else:
        assert cluster_roles == []
    for role in [*roles, *cluster_roles]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "secrets" not in rule["resources"]
    service_account = only(objects, "ServiceAccount")["metadata"]["name"]
    bindings = of_kind(objects, "RoleBinding") + of_kind(objects, "ClusterRoleBinding")
    assert len(bindings) == len(roles) + len(cluster_roles)
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}
        ]
    assert pod_spec(objects)["serviceAccountName"] == service_account


def test_irsa_annotation_names_the_role(rendered: dict[str, list[dict[str, Any]]]) -> None:
    annotated = only(rendered["two-namespaces"], "ServiceAccount")["metadata"]["annotations"]
    assert annotated == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mlops-bot"}
    assert "annotations" not in only(rendered["defaults"], "ServiceAccount")["metadata"]


# ---- the pod -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pod_is_probed_limited_and_locked_down(
    variant: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    spec = pod_spec(rendered[variant])
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] > 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    (bot,) = spec["containers"]
    assert bot["args"] == ["serve"]
    assert bot["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert bot["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert [p["containerPort"] for p in bot["ports"]] == [3000]
    (migrate,) = spec["initContainers"]
    assert migrate["args"] == ["migrate"]
    for container in (bot, migrate):
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert set(mounts) == {"/etc/mlops-bot", "/data", "/tmp"}  # noqa: S108 - the pod's /tmp
        assert mounts["/etc/mlops-bot"]["readOnly"] is True
        assert env_of(container)["MLOPS_BOT_CONFIG"]["value"] == "/etc/mlops-bot/config.yaml"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["tmp"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_secrets_are_referenced_by_name_never_templated(
    variant: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    objects = rendered[variant]
    assert of_kind(objects, "Secret") == []
    text = yaml.safe_dump_all(objects)
    assert "xoxb-" not in text and "xapp-" not in text and "glpat-" not in text
    spec = pod_spec(objects)
    (bot,) = spec["containers"]
    for name, entry in env_of(bot).items():
        if any(word in name for word in ("TOKEN", "SECRET", "STORE_URL")):
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], name
    migrate_env = env_of(spec["initContainers"][0])
    assert not [n for n in migrate_env if n.startswith(("SLACK_", "GITLAB_"))]


def test_socket_mode_and_http_mode(rendered: dict[str, list[dict[str, Any]]]) -> None:
    socket = env_of(pod_spec(rendered["defaults"])["containers"][0])
    assert "SLACK_APP_TOKEN" in socket and "SLACK_SIGNING_SECRET" not in socket
    assert of_kind(rendered["defaults"], "Ingress") == []
    http = env_of(pod_spec(rendered["http-ingress"])["containers"][0])
    assert "SLACK_SIGNING_SECRET" in http and "SLACK_APP_TOKEN" not in http
    assert http["MLOPS_BOT_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - inside the pod
    ingress = only(rendered["http-ingress"], "Ingress")["spec"]
    paths = [p["path"] for p in ingress["rules"][0]["http"]["paths"]]
    assert paths == ["/slack/events", "/gitlab/webhook"]
    assert ingress["tls"] == [{"hosts": ["bot.example.com"], "secretName": "bot-tls"}]
    webhook_only = only(rendered["socket-webhook-ingress"], "Ingress")["spec"]
    assert [p["path"] for p in webhook_only["rules"][0]["http"]["paths"]] == ["/gitlab/webhook"]


def test_sqlite_on_a_claim_or_postgresql_from_a_secret(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    sqlite = rendered["defaults"]
    claim = only(sqlite, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in pod_spec(sqlite)["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    deployment = only(sqlite, "Deployment")["spec"]  # never two pods on one SQLite file
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    assert "MLOPS_BOT_STORE_URL" not in env_of(pod_spec(sqlite)["containers"][0])

    postgres = rendered["postgresql"]
    assert of_kind(postgres, "PersistentVolumeClaim") == []
    for container in [*pod_spec(postgres)["containers"], *pod_spec(postgres)["initContainers"]]:
        url = env_of(container)["MLOPS_BOT_STORE_URL"]["valueFrom"]["secretKeyRef"]
        assert url == {"name": "mlops-bot-store", "key": "url"}
    assert only(postgres, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("variant", ["postgresql", "replicas"])
def test_replicas_on_postgresql_roll_one_at_a_time_and_drain(
    variant: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    objects = rendered[variant]
    deployment = only(objects, "Deployment")["spec"]
    assert deployment["replicas"] == (3 if variant == "replicas" else 1)
    assert deployment["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert only(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    (bot,) = pod_spec(objects)["containers"]
    assert bot["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert bot["readinessProbe"]["httpGet"]["path"] == "/readyz"  # store up, schema current
    (migrate,) = pod_spec(objects)["initContainers"]  # under PostgreSQL's advisory lock
    assert migrate["args"] == ["migrate"]


def test_several_replicas_always_get_a_disruption_budget(helm: Helm) -> None:
    values = VARIANTS["replicas"] | {"podDisruptionBudget": {"enabled": False}}
    assert only(helm.render(values), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert (
        of_kind(helm.render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")
        == []
    )
    no_drain = helm.render(VARIANTS["replicas"] | {"preStopSleepSeconds": 0})
    assert "lifecycle" not in pod_spec(no_drain)["containers"][0]


def test_example_config_lands_in_the_configmap(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["example-config-no-gpu-capacity"]
    config = yaml.safe_load(only(objects, "ConfigMap")["data"]["config.yaml"])
    assert config == yaml.safe_load(EXAMPLE_CONFIG.read_text())
    image = pod_spec(objects)["containers"][0]["image"]
    assert image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-bot@sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCount": 2}, "at '/store/type': value must be 'postgresql'"),
        ({"replicaCount": -1}, "/replicaCount"),
        ({"preStopSleepSeconds": -1}, "/preStopSleepSeconds"),
        ({"store": {"type": "postgresql"}}, "existingSecret"),
        ({"config": {"slack": {"bot_token": "xoxb-1"}}}, "config.slack.bot_token is a secret"),
        ({"config": {"webhooks": {"secret": "s"}}}, "config.webhooks.secret is a secret"),
        (
            {
                "config": {
                    "models": {
                        "m": {
                            "training": {
                                "backend": "kubernetes",
                                "kubernetes": {"namespace": "gpu"},
                            }
                        }
                    }
                }
            },
            "model m trains in namespace gpu",
        ),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        ({"slack": {"mode": "events"}}, "/slack/mode"),
        ({"rbac": {"trainingNamespaces": ["ML_Training"]}}, "trainingNamespaces"),
        ({"ingress": {"enabled": True, "gitlabWebhook": False}}, "nothing to expose"),
        ({"imageTag": "typo"}, "imageTag"),
    ],
)
def test_bad_values_fail_at_install_time(
    helm: Helm, values: dict[str, Any], complaint: str
) -> None:
    done = helm("template", RELEASE, str(CHART), values=values)
    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


# ---- the real control plane --------------------------------------------------------------------


class Kubectl:
    def __init__(self, tools: KubeTools, home: Path, kubeconfig: Path) -> None:
        self.binary = str(tools.kubectl)
        self.env = tool_env(home, kubeconfig)

    def __call__(self, *args: str, check: bool = True) -> str:
        done = run([self.binary, *args], self.env)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@pytest.fixture
def cluster_namespaces(helm: Helm, kubeconfig: Path) -> Iterator[tuple[Kubectl, str, list[str]]]:
    """A release namespace and two training namespaces, removed afterwards with what is left."""
    kubectl = Kubectl(helm.tools, helm.home, kubeconfig)
    suffix = uuid.uuid4().hex[:6]
    release_ns, training = f"ship-{suffix}", [f"ship-train-{suffix}", f"ship-research-{suffix}"]
    for name in (release_ns, *training):
        kubectl("create", "namespace", name)
    try:
        yield kubectl, release_ns, training
    finally:
        for release in ("solo", "pg"):
            helm("uninstall", release, "--namespace", release_ns, kubeconfig=kubeconfig)
        # No kubelet: finish pod deletions by hand so that the namespaces can go.
        kubectl(
            "delete",
            "pods",
            "--all",
            "--namespace",
            release_ns,
            "--grace-period=0",
            "--force",
            check=False,
        )
        kubectl("delete", "namespace", release_ns, *training, "--wait=false", check=False)


def wait_for_pods(kubectl: Kubectl, namespace: str, release: str, count: int) -> list[Any]:
    selector = f"app.kubernetes.io/instance={release}"
    deadline = time.monotonic() + 30
    while True:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        if len(pods) >= count or time.monotonic() > deadline:
            return list(pods)
        time.sleep(0.3)


def test_helm_install_into_a_real_apiserver(
    helm: Helm, kubeconfig: Path, cluster_namespaces: tuple[Kubectl, str, list[str]]
) -> None:
    kubectl, namespace, training = cluster_namespaces
    variants = {
        "solo": {"rbac": {"trainingNamespaces": training[:1]}},
        "pg": {
            "replicaCount": 3,
            "slack": {"mode": "http"},
            "ingress": {"enabled": True, "host": "bot.example.com"},
            "store": {"type": "postgresql", "postgresql": {"existingSecret": "store"}},
            "rbac": {"trainingNamespaces": training},
            "serviceAccount": {"roleArn": "arn:aws:iam::123456789012:role/mlops-bot"},
            "configYaml": EXAMPLE_CONFIG.read_text().replace("ml-training", training[0]),
        },
    }
    for release, values in variants.items():
        done = helm(
            "install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            values=values,
            kubeconfig=kubeconfig,
        )
        assert done.returncode == 0, f"{release}: {done.stderr}"
        assert "docs/deploy-on-kubernetes.md" in done.stdout  # NOTES.txt

    pdbs = kubectl.json("get", "poddisruptionbudgets.v1beta1.policy", "-n", namespace)["items"]
    assert len(pdbs) == 2  # the 1.20 control plane serves policy/v1beta1 only
    for release in variants:
        name = f"{release}-mlops-bot"
        kubectl(
            "get",
            f"deployment/{name}",
            f"service/{name}",
            f"configmap/{name}",
            f"serviceaccount/{name}",
            "-n",
            namespace,
        )
        want = variants[release].get("replicaCount", 1)
        pods = wait_for_pods(kubectl, namespace, release, want)
        assert len(pods) == want, f"{release}: the ReplicaSet made {len(pods)} pod(s)"
        # The apiserver drops fields it does not know: these made it through.
        spec = pods[0]["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = spec["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert spec["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "256Mi"
    kubectl("get", "persistentvolumeclaim", "solo-mlops-bot", "-n", namespace)
    replicated = kubectl.json("get", "deployment/pg-mlops-bot", "-n", namespace)["spec"]
    assert replicated["replicas"] == 3
    assert replicated["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (pod, *_) = wait_for_pods(kubectl, namespace, "pg", 3)
    assert pod["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    kubectl("get", "ingress", "pg-mlops-bot", "-n", namespace)
    for ns in training:
        roles = kubectl.json("get", "roles", "-n", ns)["items"]
        owners = sorted(r["metadata"]["name"] for r in roles)
        assert owners == (
            ["pg-mlops-bot-training", "solo-mlops-bot-training"]
            if ns == training[0]
            else ["pg-mlops-bot-training"]
        )
        for role in roles:
            assert rule_grants(role["rules"]) == ALLOWED_RULES
    for release in ("solo", "pg"):
        kubectl("get", "clusterrole", f"{release}-mlops-bot-{namespace}-gpus")
