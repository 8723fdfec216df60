"""The deployment files in ``infra/`` agree with the code they deploy.

No Docker or Kubernetes is needed: the manifests are parsed and cross-checked against the package
(config keys, Spark conf that deepsift computes, Delta jar pins, job paths, the version the images
are tagged with), the pyspark wheel (its Hadoop release and ``core-default.xml``), Airflow's own
configuration reference and ``pyproject.toml``.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import zipfile
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import deepsift
from deepsift.config import MASTER_PATTERN, Config, load_config
from deepsift.lake import jars as delta_jars
from deepsift.orchestration import defaults as dag_defaults

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
SPARK_DIR = INFRA / "spark"
COMPOSE_DIR = INFRA / "compose"
K8S_DIR = INFRA / "k8s"
DOCKER_DIR = INFRA / "docker"
APP_ROOT = PurePosixPath("/opt/deepsift")
"""Where the Dockerfile puts the repository inside the image (its WORKDIR)."""
IMAGE_NAME = "deepsift"
OPERATOR_CREATED = {"infra/compose/.env"}
"""Files the docs name that an operator creates from an example; they are not in the repository."""
UNLISTED_S3A_OPTIONS = {"fs.s3a.endpoint.region"}
"""S3A options of hadoop-aws that Hadoop's core-default.xml does not list."""
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------------------------------------
# readers


def parse_spark_conf(text: str, source: str) -> dict[str, str]:
    """``key value`` lines of a Spark properties file; comments and blank lines skipped."""
    conf: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        assert len(parts) == 2, f"{source}:{number}: not a `key value` line: {raw!r}"
        key, value = parts
        assert key.startswith("spark."), f"{source}:{number}: {key} is not a Spark setting"
        assert key not in conf, f"{source}:{number}: {key} is set twice (the later one silently wins)"
        conf[key] = value.strip()
    return conf


def spark_conf_file(name: str) -> dict[str, str]:
    return parse_spark_conf((SPARK_DIR / name).read_text(encoding="utf-8"), f"infra/spark/{name}")


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) if doc is not None]


def compose() -> dict[str, Any]:
    return yaml_documents(COMPOSE_DIR / "compose.yaml")[0]


def env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:?message}``, ``${NAME:-default}`` and ``$$``, over nested values."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, rest = match["name"], match["rest"]
        if name in variables:
            return variables[name]
        assert rest.startswith(":-"), f"${{{name}}} is neither in .env.example nor defaulted"
        return rest[2:]

    return COMPOSE_VARIABLE.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def compose_services() -> dict[str, dict[str, Any]]:
    return interpolate(compose()["services"], env_example())


def k8s_manifests() -> dict[str, list[dict[str, Any]]]:
    return {path.name: yaml_documents(path) for path in sorted(K8S_DIR.glob("*.yaml"))}


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in k8s_manifests().values() for doc in docs if doc.get("kind") == kind]


def configmap() -> dict[str, str]:
    (only,) = k8s_objects("ConfigMap")
    return only["data"]


def cronjob_pods() -> dict[str, dict[str, Any]]:
    jobs = k8s_objects("CronJob")
    return {job["metadata"]["name"]: job["spec"]["jobTemplate"]["spec"]["template"]["spec"] for job in jobs}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The literal environment of a Kubernetes container; secret and field references as placeholders."""
    env = {}
    for item in container.get("env", []):
        env[item["name"]] = item["value"] if "value" in item else f"<from {sorted(item['valueFrom'])[0]}>"
    return env


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile: comments dropped, continuations and heredocs joined."""
    text = (DOCKER_DIR / "Dockerfile").read_text(encoding="utf-8")
    lines = iter(re.sub(r"\\\n", " ", text).splitlines())
    instructions = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, rest = line.strip().partition(" ")
        heredoc = re.search(r"<<-?'?(\w+)'?", rest)
        if heredoc:
            body = []
            for inner in lines:
                if inner.strip() == heredoc[1]:
                    break
                body.append(inner)
            rest = rest + "\n" + "\n".join(body)
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_variables() -> dict[str, str]:
    """ARG defaults and ENV values of the Dockerfile, by name."""
    variables = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            variables[name] = default
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                variables[name] = re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m[1], m[0]), value)
    return variables


def infra_text_files() -> list[Path]:
    files = [path for path in INFRA.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    return [*files, REPO / "docs" / "operations.md"]


def repo_relative(path: str) -> str:
    return str(PurePosixPath(path).relative_to(APP_ROOT)) if path.startswith(f"{APP_ROOT}/") else path


@pytest.fixture()
def computed_conf(monkeypatch, tmp_path):
    """deepsift's ``spark_conf`` for a deployment's config, without fetching or building any jar.

    The home moves under ``tmp_path`` (the keys do not depend on it, and nothing is written to the
    deployment's path on this machine); the jar builders return the paths they would cache.
    """
    from deepsift.lake import session

    def cached_delta_jars(cache_dir: Path, maven_repo: str = delta_jars.DEFAULT_MAVEN_REPO) -> list[Path]:
        return [cache_dir / f"{artifact}-{version}.jar" for _, artifact, version in delta_jars.DELTA_ARTIFACTS]

    monkeypatch.setattr(session, "ensure_delta_jars", cached_delta_jars)
    if hasattr(session, "ensure_extension_jar"):
        monkeypatch.setattr(session, "ensure_extension_jar", lambda cache_dir: cache_dir / "extension.jar")

    def compute(config: Config) -> dict[str, str]:
        return session.spark_conf(config.model_copy(update={"home": tmp_path / "home"}))

    return compute


def compose_driver() -> tuple[Config, dict[str, str]]:
    """The deepsift config and environment of the compose service that runs the DAGs' Spark drivers."""
    service = compose_services()["airflow-scheduler"]
    env = dict(service["environment"])
    mounts = {target: source for source, target, *_ in (volume.split(":") for volume in service["volumes"])}
    env["DEEPSIFT_CONFIG"] = str((COMPOSE_DIR / mounts[env["DEEPSIFT_CONFIG"]]).resolve())
    return load_config(environ=env), env


def k8s_driver(tmp_path: Path, name: str = "deepsift-nightly-scan") -> tuple[Config, dict[str, str]]:
    """The deepsift config and environment of a CronJob's driver container."""
    pod = cronjob_pods()[name]
    (container,) = pod["containers"]
    env = container_env(container)
    config_file = tmp_path / "deepsift.yaml"
    config_file.write_text(configmap()["deepsift.yaml"], encoding="utf-8")
    mounted = _configmap_files(pod, container)
    assert mounted[env["DEEPSIFT_CONFIG"]] == "deepsift.yaml", "DEEPSIFT_CONFIG is not the ConfigMap's deepsift.yaml"
    env["DEEPSIFT_CONFIG"] = str(config_file)
    return load_config(environ=env), env


def _configmap_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """Path in the container -> ConfigMap key, for the ConfigMap volumes the container mounts."""
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            for item in volume["configMap"]["items"]:
                files[str(PurePosixPath(mount["mountPath"]) / item["path"])] = item["key"]
    return files


# ---------------------------------------------------------------------------------------------
# files parse


def test_every_yaml_file_parses_to_mappings():
    paths = sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")])
    assert {path.name for path in paths} >= {"compose.yaml", "deepsift.yaml", "configmap.yaml", "cronjob-scan.yaml"}
    for path in paths:
        documents = yaml_documents(path)
        assert documents, f"{path.relative_to(REPO)} is empty"
        assert all(isinstance(doc, dict) for doc in documents), f"{path.relative_to(REPO)}: not a mapping"
    data = configmap()
    assert isinstance(yaml.safe_load(data["deepsift.yaml"]), dict)
    assert yaml.safe_load(data["executor-pod-template.yaml"])["kind"] == "Pod"


def test_spark_conf_files_parse_as_key_value_lines():
    names = sorted(path.name for path in SPARK_DIR.glob("*.conf"))
    assert {"spark-defaults.local.conf", "spark-defaults.standalone.conf", "spark-defaults.kubernetes.conf",
            "lakehouse-s3a.conf", "spark-worker-gpu.conf"} <= set(names)
    for name in names:
        assert spark_conf_file(name), f"infra/spark/{name} sets nothing"
    with pytest.raises(AssertionError, match="set twice"):
        parse_spark_conf("spark.a 1\nspark.a 2\n", "example")
    for target in ("local", "standalone", "kubernetes"):
        conf = spark_conf_file(f"spark-defaults.{target}.conf")
        assert conf["spark.speculation"] == "false"
        assert conf["spark.python.worker.reuse"] == "true"
        assert int(conf["spark.sql.execution.arrow.maxRecordsPerBatch"]) > 0
        assert MASTER_PATTERN.fullmatch(conf["spark.master"]), f"{target}: master {conf['spark.master']}"


def test_kubernetes_configmap_holds_the_spark_files_verbatim():
    layered = {**spark_conf_file("spark-defaults.kubernetes.conf"), **spark_conf_file("lakehouse-s3a.conf")}
    in_configmap = parse_spark_conf(configmap()["spark-defaults.conf"], "configmap.yaml spark-defaults.conf")
    assert in_configmap == layered


# ---------------------------------------------------------------------------------------------
# pins: jars, images, Python packages


def wheel_jars() -> Path:
    return Path(find_spec("pyspark").submodule_search_locations[0]) / "jars"


def test_hadoop_aws_is_pinned_to_the_wheels_hadoop_and_every_jar_has_a_checksum():
    (client_api,) = wheel_jars().glob("hadoop-client-api-*.jar")
    hadoop_version = client_api.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    pinned = {}
    for line in (DOCKER_DIR / "jars.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            coordinate, sha1 = line.split()
            group, artifact, version = coordinate.split(":")
            assert re.fullmatch(r"[0-9a-f]{40}", sha1), f"{coordinate}: {sha1} is not a SHA-1"
            pinned[f"{group}:{artifact}"] = version
    assert pinned["org.apache.hadoop:hadoop-aws"] == hadoop_version
    assert "software.amazon.awssdk:bundle" in pinned
    assert "org.postgresql:postgresql" in pinned


def test_delta_versions_named_anywhere_in_infra_are_the_ones_deepsift_pins():
    artifacts = {artifact for _, artifact, _ in delta_jars.DELTA_ARTIFACTS}
    pattern = re.compile(r"(delta-spark_2\.\d+|delta-storage(?:-s3-dynamodb)?)[-:](\d+\.\d+\.\d+)")
    found = []
    for path in infra_text_files():
        for artifact, version in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            found.append((path.relative_to(REPO), artifact, version))
    assert found, "no Delta jar named in infra/"
    for where, artifact, version in found:
        assert artifact in artifacts, f"{where}: {artifact} is not a Delta artifact deepsift uses"
        pinned = delta_jars.DELTA_VERSION
        assert version == pinned, f"{where}: {artifact} {version}, deepsift pins {pinned}"


def all_images() -> list[tuple[str, str]]:
    images = [(f"compose {name}", service["image"]) for name, service in compose()["services"].items()]
    for docs_name, docs in k8s_manifests().items():
        for doc in docs:
            if doc.get("kind") == "CronJob":
                pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                images += [(f"{docs_name} {c['name']}", c["image"]) for c in pod["containers"]]
    for name in ("spark-defaults.kubernetes.conf",):
        images.append((name, spark_conf_file(name)["spark.kubernetes.container.image"]))
    images.append(("Dockerfile FROM", dockerfile_variables()["PYTHON_IMAGE"]))
    return images


def test_images_are_the_one_built_here_or_pinned_third_party_ones():
    ours = {f"{IMAGE_NAME}:{deepsift.__version__}", f"{IMAGE_NAME}:{deepsift.__version__}-cuda"}
    images = all_images()
    assert any(image in ours for _, image in images)
    for where, image in images:
        name, _, tag = image.rpartition(":")
        if name.rsplit("/", 1)[-1] == IMAGE_NAME:
            assert image in ours, f"{where}: {image} is not a tag infra/docker/build.sh builds ({sorted(ours)})"
        else:
            assert name and "/" not in tag, f"{where}: {image} has no tag"
            assert tag != "latest" and re.search(r"\d", tag), f"{where}: {image} is not pinned to a version"
    build = (DOCKER_DIR / "build.sh").read_text(encoding="utf-8")
    assert "libs/deepsift/__init__.py" in build and '"$name:$version-cuda"' in build


def test_base_image_python_matches_the_package_and_spark_home():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    variables = dockerfile_variables()
    python_version = re.match(r"python:(\d+\.\d+\.\d+)-", variables["PYTHON_IMAGE"])[1]
    assert SpecifierSet(project["requires-python"]).contains(python_version)
    major_minor = ".".join(python_version.split(".")[:2])
    assert variables["SPARK_HOME"] == f"/usr/local/lib/python{major_minor}/site-packages/pyspark"
    assert ("WORKDIR", str(APP_ROOT)) in dockerfile_instructions()


def test_dockerfile_copies_only_what_the_build_context_keeps():
    ignore = (DOCKER_DIR / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    kept = {line[1:].strip().rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            sources += shlex.split(rest)[:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        top = PurePosixPath(source).parts[0]
        assert source in kept or top in kept, f"COPY {source}: excluded by the dockerignore file"


def test_image_constraints_satisfy_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for line in (DOCKER_DIR / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"constraints.txt: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = specifier.version
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency but the image does not pin it"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, pyproject.toml asks for {requirement.specifier}"
        )
    installed_by_name = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "RUN" and "pip install" in rest:
            words = shlex.split(rest.split("pip install", 1)[1].split("&&")[0])
            installed_by_name += [w for w in words if re.fullmatch(r"[A-Za-z][\w.-]*", w) and not w.startswith("-")]
    assert {"torch", "psycopg2-binary"} <= set(installed_by_name)
    for name in installed_by_name:
        assert canonicalize_name(name) in pins, f"the Dockerfile installs {name} without a pin"


# ---------------------------------------------------------------------------------------------
# names the files use exist


def test_job_dag_and_script_paths_named_in_infra_and_operations_doc_exist():
    pattern = re.compile(r"(?<![\w.-])((?:/opt/deepsift/)?(?:jobs|dags|infra|libs|models)/[\w./-]*[\w-])")
    checked = set()
    for path in infra_text_files():
        for reference in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            relative = repo_relative(reference)
            if relative in OPERATOR_CREATED or "*" in relative:
                continue
            assert (REPO / relative).exists(), f"{path.relative_to(REPO)} names {reference}, which does not exist"
            checked.add(relative)
    assert {"jobs/scan.py", "jobs/maintain.py", "infra/gpu_discovery.sh", "dags/deepsift_nightly_scan.py"} <= checked


def test_deepsift_variables_are_config_keys(tmp_path):
    checked = []
    for name, service in compose_services().items():
        env = service.get("environment", {})
        if any(key.startswith("DEEPSIFT_") for key in env):
            mounts = dict(reversed(volume.split(":")[:2]) for volume in service.get("volumes", []))
            if "DEEPSIFT_CONFIG" in env:
                assert env["DEEPSIFT_CONFIG"] in mounts, f"{name}: DEEPSIFT_CONFIG names a file it does not mount"
                env = {**env, "DEEPSIFT_CONFIG": str((COMPOSE_DIR / mounts[env["DEEPSIFT_CONFIG"]]).resolve())}
            load_config(environ=env)  # raises ConfigError naming an unknown key or a bad value
            checked += [key for key in env if key.startswith("DEEPSIFT_")]
    for name in cronjob_pods():
        config, env = k8s_driver(tmp_path, name)
        assert str(config.home) == "/var/lib/deepsift"
        checked += [key for key in env if key.startswith("DEEPSIFT_")]
    image_env = {key: value for key, value in dockerfile_variables().items() if key.startswith("DEEPSIFT_")}
    assert image_env, "the image sets no DEEPSIFT_HOME"
    assert str(load_config(environ=image_env).home) == image_env["DEEPSIFT_HOME"]
    assert {"DEEPSIFT_SPARK__MASTER", "DEEPSIFT_MLFLOW__TRACKING_URI", "DEEPSIFT_CONFIG"} <= set(checked)
    assert len(checked) >= 10


def test_airflow_settings_in_compose_exist_in_airflow():
    reference = Path(find_spec("airflow").submodule_search_locations[0]) / "config_templates" / "config.yml"
    sections = yaml.load(reference.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    scheduler = compose_services()["airflow-scheduler"]["environment"]
    settings = [key for key in scheduler if key.startswith("AIRFLOW__")]
    assert len(settings) >= 8
    for key in settings:
        section, option = key.removeprefix("AIRFLOW__").lower().split("__")
        assert option in sections.get(section, {}).get("options", {}), f"{key}: Airflow has no [{section}] {option}"
    connection = json.loads(scheduler[f"AIRFLOW_CONN_{dag_defaults.SPARK_CONN_ID.upper()}"])
    assert connection["conn_type"] == "spark"
    assert f"{connection['host']}:{connection['port']}" == scheduler["DEEPSIFT_SPARK__MASTER"]
    source_root = scheduler["AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT"]
    targets = [volume.split(":")[1] for volume in compose_services()["airflow-scheduler"]["volumes"]]
    assert source_root in targets, "the uploads folder the DAG lists is not mounted on the scheduler"
    init = " ".join(compose_services()["airflow-init"]["command"])
    assert re.search(rf"pools set {dag_defaults.SPARK_POOL} 1 ", init), "the Spark pool must be created with one slot"


# ---------------------------------------------------------------------------------------------
# Spark settings agree with what deepsift computes


def test_spark_defaults_leave_deepsift_settings_to_deepsift(computed_conf, tmp_path):
    targets = {
        "local": (load_config(environ={}), ["spark-defaults.local.conf"]),
        "standalone": (compose_driver()[0], ["spark-defaults.standalone.conf", "lakehouse-s3a.conf"]),
        "kubernetes": (k8s_driver(tmp_path)[0], ["spark-defaults.kubernetes.conf", "lakehouse-s3a.conf"]),
    }
    for target, (config, files) in targets.items():
        computed = computed_conf(config)
        assert {"spark.jars", "spark.sql.extensions", "spark.sql.warehouse.dir"} <= computed.keys()
        for name in files:
            defaults = spark_conf_file(name)
            # deepsift passes these on every submit and session: here they would be dead settings.
            shadowed = sorted(defaults.keys() & computed.keys())
            assert not shadowed, f"infra/spark/{name} sets {shadowed}, which deepsift sets itself ({target})"
        master = spark_conf_file(files[0])["spark.master"]
        assert master == config.spark.master, f"{target}: {files[0]} says {master}, the deployment says otherwise"


def test_jar_paths_in_the_fake_match_how_deepsift_caches(tmp_path):
    for _, artifact, version in delta_jars.DELTA_ARTIFACTS:
        (tmp_path / f"{artifact}-{version}.jar").write_bytes(b"")
    cached = delta_jars.ensure_delta_jars(tmp_path, "file:///nonexistent-repository")
    assert cached == [tmp_path / f"{artifact}-{version}.jar" for _, artifact, version in delta_jars.DELTA_ARTIFACTS]


def test_deployments_use_a_shared_metastore_and_the_object_store(computed_conf, tmp_path):
    jars = (DOCKER_DIR / "jars.txt").read_text(encoding="utf-8").splitlines()
    assert [line for line in jars if line.startswith("org.postgresql:postgresql:")], "no JDBC driver for the metastore"
    for where, (config, env) in {"compose": compose_driver(), "kubernetes": k8s_driver(tmp_path)}.items():
        conf = computed_conf(config)
        assert conf["spark.sql.warehouse.dir"].startswith("s3a://"), where
        assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"].startswith("jdbc:postgresql://"), where
        assert conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver", where
        for value in config.spark.extra_conf.values():
            for name in re.findall(r"\$\{env\.(\w+)\}", value):
                assert name in env, f"{where}: the config reads ${{env.{name}}} but the driver has no {name}"
        assert config.mlflow.tracking_uri and config.mlflow.tracking_uri.startswith("http"), where


def test_s3a_options_are_hadoop_options(tmp_path):
    (client_api,) = wheel_jars().glob("hadoop-client-api-*.jar")
    with zipfile.ZipFile(client_api) as jar:
        core_default = ElementTree.fromstring(jar.read("core-default.xml"))
    known = {prop.findtext("name") for prop in core_default.iter("property")} | UNLISTED_S3A_OPTIONS
    keys = [key for name in ("lakehouse-s3a.conf",) for key in spark_conf_file(name)]
    keys += list(compose_driver()[0].spark.extra_conf) + list(k8s_driver(tmp_path)[0].spark.extra_conf)
    s3a = [key.removeprefix("spark.hadoop.") for key in keys if key.startswith("spark.hadoop.fs.s3a.")]
    assert len(s3a) >= 5
    for option in s3a:
        assert option in known, f"{option} is not an S3A option of Hadoop {client_api.name}"


# ---------------------------------------------------------------------------------------------
# compose


def test_compose_references_only_defined_volumes_networks_and_services():
    document = compose()
    services = compose_services()
    volumes, networks = set(document["volumes"]), set(document["networks"])
    used_volumes = set()
    for name, service in services.items():
        assert set(service.get("networks", [])) <= networks, f"{name}: undefined network"
        assert set(service.get("depends_on", {})) <= set(services), f"{name}: depends on an undefined service"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: bind mount {source} does not exist"
            elif not source.startswith("/"):
                assert source in volumes, f"{name}: volume {source} is not defined"
                used_volumes.add(source)
    assert used_volumes == volumes, f"defined but unused volumes: {volumes - used_volumes}"


def test_compose_variables_are_all_in_the_env_example():
    text = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8").replace("$$", "")
    used = {match["name"] for match in COMPOSE_VARIABLE.finditer(text)}
    documented = set(env_example())
    assert used == documented, f"missing from .env.example: {used - documented}; unused: {documented - used}"


def test_spark_processes_share_checkpoints_and_gpu_workers_fit_one_executor():
    config, _ = compose_driver()
    services = compose_services()
    standalone = spark_conf_file("spark-defaults.standalone.conf")
    checkpoint_dir = str(config.checkpoint_dir)
    workers = {
        name: service
        for name, service in services.items()
        if "deploy.worker.Worker" in " ".join(service.get("command", []))
    }
    assert workers
    for name in ["airflow-scheduler", *workers]:
        targets = {volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]}
        assert targets.get(checkpoint_dir) == "checkpoints", f"{name}: {checkpoint_dir} is not the shared volume"
    for name, worker in workers.items():
        command = worker["command"]
        options = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
        assert options["--cores"] == standalone["spark.executor.cores"], name
        assert int(options["--memory"].rstrip("g")) >= int(standalone["spark.executor.memory"].rstrip("g")), name
        worker_conf = spark_conf_file(PurePosixPath(options["--properties-file"]).name)
        (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
        assert int(worker_conf["spark.worker.resource.gpu.amount"]) == len(device["device_ids"]), name
        assert worker_conf["spark.worker.resource.gpu.amount"] == standalone["spark.executor.resource.gpu.amount"]
        assert (REPO / repo_relative(worker_conf["spark.worker.resource.gpu.discoveryScript"])).is_file()
        assert worker["image"].endswith("-cuda"), f"{name}: a GPU worker needs the CUDA image"


def test_object_store_buckets_are_created():
    services = compose_services()
    script = services["minio-init"]["command"][0]
    created = set(re.search(r"mc mb --ignore-existing (.+)", script)[1].replace("local/", "").split())
    config, _ = compose_driver()
    wanted = {
        config.spark.extra_conf["spark.sql.warehouse.dir"].removeprefix("s3a://").split("/")[0],
        services["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"].removeprefix("s3://").split("/")[0],
    }
    assert wanted <= created


# ---------------------------------------------------------------------------------------------
# Kubernetes


def test_kustomization_lists_every_manifest():
    (kustomization,) = yaml_documents(K8S_DIR / "kustomization.yaml")
    listed = set(kustomization["resources"])
    manifests = {path.name for path in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == manifests


def test_kubernetes_objects_reference_what_exists(tmp_path):
    kubernetes = spark_conf_file("spark-defaults.kubernetes.conf")
    namespace = kubernetes["spark.kubernetes.namespace"]
    assert [ns["metadata"]["name"] for ns in k8s_objects("Namespace")] == [namespace]
    for docs in k8s_manifests().values():
        for doc in docs:
            if doc["kind"] not in ("Namespace", "Kustomization"):
                assert doc["metadata"].get("namespace") == namespace, f"{doc['kind']} {doc['metadata']['name']}"
    accounts = {sa["metadata"]["name"] for sa in k8s_objects("ServiceAccount")}
    roles = {role["metadata"]["name"]: role for role in k8s_objects("Role")}
    def creates_pods(role_name: str) -> bool:
        rules = roles[role_name]["rules"] if role_name in roles else []
        return any("pods" in rule["resources"] and "create" in rule["verbs"] for rule in rules)

    bound = {
        subject["name"]
        for binding in k8s_objects("RoleBinding")
        for subject in binding["subjects"]
        if creates_pods(binding["roleRef"]["name"])
    }
    (secret,) = yaml_documents(K8S_DIR / "secret.example.yaml")
    claims = {pvc["metadata"]["name"] for pvc in k8s_objects("PersistentVolumeClaim")}
    template = yaml.safe_load(configmap()["executor-pod-template.yaml"])
    pods = [*cronjob_pods().values(), template["spec"]]
    for pod in pods:
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
            if "configMap" in volume:
                assert {item["key"] for item in volume["configMap"]["items"]} <= set(configmap())
        for container in pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"], item["name"]
                    assert ref["key"] in secret["stringData"], item["name"]
    for name, pod in cronjob_pods().items():
        assert pod["serviceAccountName"] in accounts & bound, f"{name}: its service account may not create pods"
        (container,) = pod["containers"]
        files = _configmap_files(pod, container)
        assert files[kubernetes["spark.kubernetes.executor.podTemplateFile"]] == "executor-pod-template.yaml"
        assert files[f"{container_env(container)['SPARK_CONF_DIR']}/spark-defaults.conf"] == "spark-defaults.conf"
        script = " ".join(container["args"])
        for job in re.findall(r"/opt/deepsift/(jobs/\w+\.py)", script):
            assert (REPO / job).is_file()
        assert "spark.driver.host=$POD_IP" in script and "spark.kubernetes.driver.pod.name=$POD_NAME" in script


def test_executor_pods_get_the_gpu_and_volumes_the_driver_uses(tmp_path):
    kubernetes = spark_conf_file("spark-defaults.kubernetes.conf")
    template = yaml.safe_load(configmap()["executor-pod-template.yaml"])["spec"]
    (executor,) = template["containers"]
    assert executor["name"] == kubernetes["spark.kubernetes.executor.podTemplateContainerName"]
    gpus = executor["resources"]["limits"][f"{kubernetes['spark.executor.resource.gpu.vendor']}/gpu"]
    assert str(gpus) == kubernetes["spark.executor.resource.gpu.amount"]
    assert any(t["key"] == "nvidia.com/gpu" for t in template["tolerations"])
    assert (REPO / repo_relative(kubernetes["spark.executor.resource.gpu.discoveryScript"])).is_file()
    config, _ = k8s_driver(tmp_path)
    scan_pod = cronjob_pods()["deepsift-nightly-scan"]
    (driver,) = scan_pod["containers"]
    for pod, container in ((scan_pod, driver), (template, executor)):
        claims = {
            volume["name"]: volume["persistentVolumeClaim"]["claimName"]
            for volume in pod["volumes"]
            if "persistentVolumeClaim" in volume
        }
        mounts = {m["mountPath"]: claims.get(m["name"]) for m in container["volumeMounts"]}
        assert mounts[str(config.checkpoint_dir)] == "deepsift-checkpoints", container["name"]
        assert mounts["/mnt/uploads"] == "deepsift-uploads", container["name"]
