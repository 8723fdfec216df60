"""One typed configuration for every deepsift entrypoint.

Loaded once at the entrypoint (`load_config`) from, in increasing priority: built-in defaults, a
YAML file (``--config`` or ``DEEPSIFT_CONFIG``), and ``DEEPSIFT_*`` environment variables, then
passed down explicitly; pydantic-settings reads and layers the sources. Environment keys use a
double underscore between levels:
``DEEPSIFT_SPARK__MASTER=local[2]``, ``DEEPSIFT_FACES__DETECTOR=haar``; ``DEEPSIFT_HOME`` sets
``home``. A bad value fails fast with :class:`ConfigError`, naming the key and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from pydantic.fields import FieldInfo

from deepsift.errors import DeepsiftError

ENV_PREFIX = "DEEPSIFT_"
ENV_LEVEL_SEPARATOR = "__"
CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"


MASTER_PATTERN = re.compile(r"local(\[(\*|\d+)(,\d+)?\])?|local-cluster\[.+\]|spark://.+|k8s://.+|yarn")
_MEMORY_SIZE = re.compile(r"(\d+)([kmgt]?)b?", re.IGNORECASE)


def memory_bytes(size: str) -> int:
    """The bytes in a JVM memory size as Spark reads one: a number of bytes, or of KiB, MiB, GiB or TiB.

    >>> memory_bytes("4g"), memory_bytes("512M"), memory_bytes("1024")
    (4294967296, 536870912, 1024)
    """
    match = _MEMORY_SIZE.fullmatch(size)
    if match is None:
        raise ValueError("must be a number of bytes, or a number followed by k, m, g or t (e.g. 512m, 4g)")
    number, unit = match.groups()
    return int(number) * 1024 ** "bkmgt".index(unit.lower() or "b")


class ConfigError(DeepsiftError, ValueError):
    """A configuration value is missing, unknown or out of range; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


DriverJit = Literal["quick", "full"]
DriverGc = Literal["parallel", "g1"]
QueryCodegen = Literal["interpreted", "compiled"]


class SparkConfig(_Section):
    """Where Spark runs. Any master Spark accepts: ``local[*]``, ``spark://host:7077``, ``k8s://...``."""

    master: str = "local[*]"
    app_name: str = "deepsift"
    driver_memory: str = "4g"
    """The driver JVM's heap (``spark.driver.memory``); it starts with half of it (see
    ``deepsift.lake.session.initial_heap_option``)."""
    shuffle_partitions: int = Field(8, ge=1)
    maven_repo: str = "https://repo1.maven.org/maven2"
    """Where the Delta jars are fetched from, once (a corporate mirror works too)."""
    extra_conf: dict[str, str] = Field(default_factory=dict)
    verbose_logs: bool = False
    """Spark's own console log as Spark configures it (``deepsift --verbose``); off, the driver logs only
    warnings and errors a user can act on (``deepsift/lake/log4j2.properties``)."""
    class_archive: bool = True
    """Start the driver JVM from a class-data archive of the classes deepsift's sessions load, written once
    by the first JVM that finds none (``deepsift.lake.class_archive``): seconds off every command."""
    driver_jit: DriverJit = "quick"
    """How the driver JVM compiles hot code. ``quick``: the client compiler alone (HotSpot's
    ``-XX:TieredStopAtLevel=1``), which halves the CPU a short command spends (docs/benchmarks.md): its
    Spark work is planning and small Delta commits, over before the optimising compiler pays back, and
    every Python worker wants the same cores. ``full``: HotSpot's default tiers, for a driver that runs
    for hours over heavy JVM-side work; the JDBC server (``deepsift sql-server``) uses it unless this key
    is set."""
    driver_gc: DriverGc = "parallel"
    """The driver JVM's garbage collector. ``parallel``: HotSpot's throughput collector
    (``-XX:+UseParallelGC``), whose cheap write barriers cost the client compiler's code and the
    interpreter less than G1's: a one-clip scan's JVM spent 9% less CPU (docs/benchmarks.md); its pauses
    stop the driver for a moment, which a batch command does not notice. ``g1``: G1 (``-XX:+UseG1GC``,
    HotSpot's default on most servers), short pauses for an interactive driver; the JDBC server uses it
    unless this key is set."""
    query_codegen: QueryCodegen = "interpreted"
    """How Spark evaluates a query's expressions. ``interpreted``: directly, with no Java generated and
    compiled for the query (Spark's ``spark.sql.codegen.factoryMode=NO_CODEGEN``, which also turns
    whole-stage code generation off). deepsift's queries are many and small (catalog, Delta log, rows
    per video or face) and its heavy work runs in Python workers, so compiling each query costs more CPU
    than it saves: a one-clip scan spent 16% less wall (docs/benchmarks.md). ``compiled``: Spark's
    default, for queries over millions of rows; the JDBC server uses it unless this key is set."""

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not MASTER_PATTERN.fullmatch(value):
            raise ValueError("must be one of: local, local[N], local[*], local[N,F], spark://host:port, k8s://url, yarn")
        return value

    @field_validator("driver_memory")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        memory_bytes(value)
        return value


class LakeConfig(_Section):
    """The catalog schema that holds every deepsift table, and the embedded metastore's turn-taking."""

    schema_name: str = Field("deepsift", pattern=r"^[a-z_][a-z0-9_]*$")
    metastore_wait_s: float = Field(60.0, ge=0)
    """How long a command waits for another process to let go of the embedded metastore before it gives up,
    naming that process (a finished command's JVM lets go within seconds)."""


class SamplingConfig(_Section):
    """How many frames to take from each video and how (see ``deepsift.media.sampling``)."""

    frames_per_video: int = Field(32, ge=1, le=1024)
    keyframe_min_coverage: float = Field(0.75, gt=0.0, le=1.0)
    """Use keyframes only when at least this share of the wanted frames can be keyframes (a lower share
    decodes less where keyframes are sparse, and gives fewer frames)."""
    reference_frames_only: bool = False
    """Decode only reference frames (``skip_frame`` NONREF) and take the one nearest each wanted time:
    fewer core-seconds, but frames move by a frame or two, so the crops change."""


class DecodeLimits(_Section):
    """Limits that untrusted uploads are decoded under, each breach a typed error row."""

    max_pixels: int = Field(3840 * 2160, ge=64 * 64)
    max_duration_s: float = Field(3 * 3600.0, gt=0)
    max_streams: int = Field(16, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    memory_mb: int = Field(3072, ge=256)


class FacesConfig(_Section):
    """Face detection and cropping; every field here changes the crops, so all feed the preprocess_version."""

    detector: Literal["yunet", "haar"] = "yunet"
    """``yunet`` (weights ship with deepsift) or ``haar`` (OpenCV's bundled cascade, weaker)."""
    yunet_model_path: Path | None = None
    """Another YuNet ONNX file to use instead of the packaged one (unset: the packaged one)."""
    score_threshold: float = Field(0.8, ge=0.0, le=1.0)
    detect_max_side: int = Field(640, ge=64)
    """Frames are shrunk so that their longer side is at most this before detection."""
    min_face_px: int = Field(24, ge=8)
    """Faces smaller than this (shorter box side, in source pixels) are ignored."""
    max_faces_per_frame: int = Field(4, ge=1)
    margin: float = Field(0.3, ge=0.0, le=2.0)
    crop_size: int = Field(224, ge=32, le=1024)
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(95, ge=50, le=100)


class MlflowConfig(_Section):
    """Where models are tracked and registered; unset URIs mean the embedded store under ``home``."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    registered_model: str = "deepsift-detector"
    alias: str = "champion"


DetectDevice = Literal["auto", "cpu", "cuda"]
CpuEngine = Literal["onnxruntime", "torch"]
"""What the detect stage runs on: ``auto`` (a GPU when there is one, else the CPU), ``cpu`` or ``cuda``."""


class DetectConfig(_Section):
    """Where the detect stage scores crops (see ``deepsift.detect.devices``).

    ``auto`` uses GPUs when Spark's executors have them (a ResourceProfile on the detect stage only),
    else a GPU visible in local mode, else the CPU; ``cuda`` fails when there is no GPU to use.
    """

    device: DetectDevice = "auto"
    cpu_engine: CpuEngine = "onnxruntime"
    """What runs the network on a CPU: the model exported to ONNX and run by ONNX Runtime (1.5 to 1.8x
    torch's rate on EfficientNets, docs/benchmarks.md), or torch itself. An export that fails or whose
    scores differ from torch's by more than 1e-3 falls back to torch, and the run says so."""
    cpu_batch_size: int = Field(8, ge=1, le=4096)
    """Crops per forward pass on a CPU: small batches stay in cache (EfficientNet-B0 runs about twice as
    fast at 8 as at 256 on one core)."""
    gpu_batch_size: int = Field(256, ge=1, le=4096)
    """Crops per forward pass on a GPU: where EfficientNet-B0, B4 and Xception were measured on an H100."""
    gpu_amount_per_task: float = 1.0
    """GPUs each detect task holds: a share of one GPU (0.5 lets two tasks share it) or whole GPUs."""
    executor_wait_s: float = Field(120.0, gt=0)
    """How long a GPU detect stage waits for a first executor before failing with what it needs."""

    @field_validator("gpu_amount_per_task")
    @classmethod
    def _share_or_whole(cls, value: float) -> float:
        # Spark's own rule for task resource amounts; checked here so the message names the key.
        if not (0 < value <= 1 or (value > 1 and value.is_integer())):
            raise ValueError("must be above 0 and at most 1 (a share of one GPU, e.g. 0.5) or a whole number (e.g. 2)")
        return value

    def batch_size(self, device: str) -> int:
        """Crops per forward pass on a torch device (``cpu``, ``cuda:0``)."""
        return self.cpu_batch_size if device == "cpu" else self.gpu_batch_size


class ProvenanceConfig(_Section):
    """Content Credentials (C2PA) read at ingest (see ``deepsift.provenance``)."""

    enabled: bool = True
    trust_anchors: Path | None = None
    """A PEM file of the root certificates whose signers count as ``valid``; unset, every signer of a
    manifest that otherwise holds is ``untrusted``."""
    max_manifest_bytes: int = Field(16 << 20, ge=1024)
    """A larger manifest store is not parsed: the video's credentials are ``invalid`` (manifest_too_large)."""


class _HomeFolder:
    """A folder under ``home``, resolved when read: every embedded store keeps its files in one.

    A descriptor rather than one property per folder, so each folder is a single line on :class:`Config`.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, config: None, owner: type[Config]) -> _HomeFolder: ...

    @overload
    def __get__(self, config: Config, owner: type[Config]) -> Path: ...

    def __get__(self, config: Config | None, owner: type[Config]) -> Path | _HomeFolder:
        return self if config is None else config.home.resolve() / self._name


class Config(BaseSettings):
    """The whole deepsift configuration.

    Built in code, it holds its arguments and the defaults only; :func:`load_config` adds the YAML file
    and the ``DEEPSIFT_*`` environment under them (see :meth:`settings_customise_sources`).
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_LEVEL_SEPARATOR,
    )

    home: Path = Path(".deepsift")
    """Holds the lakehouse, the metastore, the MLflow store and caches on the embedded defaults."""
    spark: SparkConfig = Field(default_factory=SparkConfig)
    lake: LakeConfig = Field(default_factory=LakeConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    decode: DecodeLimits = Field(default_factory=DecodeLimits)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    provenance: ProvenanceConfig = Field(default_factory=ProvenanceConfig)

    warehouse_dir: ClassVar[_HomeFolder] = _HomeFolder("warehouse")
    metastore_dir: ClassVar[_HomeFolder] = _HomeFolder("metastore")
    cache_dir: ClassVar[_HomeFolder] = _HomeFolder("cache")
    checkpoint_dir: ClassVar[_HomeFolder] = _HomeFolder("checkpoints")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The arguments first, then the layers :func:`load_config` is reading, if any, highest first.

        The process environment is not read here: ``load_config(environ=...)`` decides which environment
        counts, and a ``Config`` built in code (tests, ``model_copy``) depends on its arguments alone.
        """
        return (init_settings, *_LOADING.get())


_LOADING: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar("deepsift_config_layers", default=())
"""The environment and YAML sources of the :func:`load_config` call in progress in this context."""


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from defaults, an optional YAML file, the environment and overrides.

    In increasing priority: defaults, the YAML file (``path``, else ``DEEPSIFT_CONFIG``), the
    ``DEEPSIFT_*`` variables of ``environ`` (the process environment when ``None``; ``{}`` isolates
    from it), then ``overrides`` keyed by dotted names (``{"spark.master": "local[1]"}``).

    >>> load_config(environ={"DEEPSIFT_SPARK__MASTER": "local[2]"}).spark.master
    'local[2]'
    """
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get(CONFIG_VARIABLE)
    layers: list[PydanticBaseSettingsSource] = [_EnvironmentSource(environ)]
    if path:
        layers.append(_YamlFileSource(Path(path)))
    arguments: dict[str, Any] = {}
    for dotted_key, value in (overrides or {}).items():
        _place(arguments, dotted_key.split("."), value)
    token = _LOADING.set(tuple(layers))
    try:
        return Config(**arguments)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    finally:
        _LOADING.reset(token)


class _EnvironmentSource(EnvSettingsSource):
    """The ``DEEPSIFT_*`` variables of a given environment, one level of sections per ``__``.

    Plain values reach pydantic as text and are converted by the field's type; a section or mapping
    given whole (``DEEPSIFT_SPARK__EXTRA_CONF={spark.a: '1'}``) is YAML, so JSON works too. A
    ``DEEPSIFT_*`` variable that names no key is kept, so validation refuses it by name.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = {
            name.lower(): value
            for name, value in environ.items()
            if name.startswith(ENV_PREFIX) and name != CONFIG_VARIABLE
        }
        super().__init__(Config, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        """A whole section or mapping in one variable, read as YAML (a superset of JSON's objects)."""
        try:
            return yaml.safe_load(value) if isinstance(value, str) and value.strip() else value
        except yaml.YAMLError:
            return value

    def __call__(self) -> dict[str, Any]:
        """The variables as nested sections, with those that name no known key placed where they point."""
        data = super().__call__()
        for name, value in sorted(self._environ.items()):
            keys = name[len(ENV_PREFIX):].split(ENV_LEVEL_SEPARATOR)
            _place(data, keys, value, keep=True)
        return data


class _YamlFileSource(YamlConfigSettingsSource):
    """The YAML file a deployment mounts; a missing or malformed one is an error that names it."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        if not path.is_file():
            raise ConfigError(f"config file {path} is not a file")
        super().__init__(Config, yaml_file=path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        try:
            loaded = yaml.safe_load(file_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {file_path} is not valid YAML: {error}") from None
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file_path} must hold a mapping of keys, not {type(loaded).__name__}")
        return loaded


def _place(data: dict[str, Any], keys: list[str], value: Any, keep: bool = False) -> None:
    """Set ``value`` at the nested key ``keys``, creating sections on the way.

    ``keep`` leaves a value already there in place. Where the way passes through a value rather than a
    section, that is a :class:`ConfigError` naming both.
    """
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {'.'.join(keys)}: {key} is a value, not a section")
        node = child
    if not (keep and keys[-1] in node):
        node[keys[-1]] = value


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            section = _section_for(problem["loc"][:-1])
            allowed = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"config key {key} is unknown; allowed keys here: {allowed}")
            continue
        given = problem.get("input")
        lines.append(f"config key {key}: {problem['msg']} (given: {given!r})")
    return "; ".join(lines)


def _section_for(location: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
