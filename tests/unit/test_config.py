"""The typed config: defaults, YAML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsift.config import ConfigError, load_config


def driver_options(home: Path, **overrides: object) -> list[str]:
    """The driver JVM's options in the conf every session and spark-submit use, for the config with
    ``overrides`` over ``home``; the conf is pure, so no jar is needed to compute it."""
    from deepsift.lake.session import spark_conf

    config = load_config(environ={}, overrides={"home": str(home), **overrides})
    return spark_conf(config)["spark.driver.extraJavaOptions"].split()


def test_defaults_are_the_embedded_setup():
    config = load_config(environ={})
    assert config.spark.master == "local[*]"
    assert config.sampling.frames_per_video == 32
    assert config.faces.detector == "yunet"
    assert str(config.home) == ".deepsift"


def test_yaml_then_environment_then_overrides(tmp_path):
    path = tmp_path / "deepsift.yaml"
    path.write_text("spark:\n  master: local[4]\nsampling:\n  frames_per_video: 8\n")
    config = load_config(path, environ={"DEEPSIFT_SAMPLING__FRAMES_PER_VIDEO": "16", "DEEPSIFT_HOME": "/srv/ds"})
    assert config.spark.master == "local[4]"
    assert config.sampling.frames_per_video == 16
    assert str(config.home) == "/srv/ds"
    assert load_config(path, environ={}, overrides={"spark.master": "local[1]"}).spark.master == "local[1]"


def test_config_file_from_environment(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("faces:\n  detector: haar\n")
    assert load_config(environ={"DEEPSIFT_CONFIG": str(path)}).faces.detector == "haar"


def test_bad_choice_names_key_and_allowed_values():
    with pytest.raises(ConfigError, match=r"faces\.detector.*'yunet' or 'haar'.*mtcnn"):
        load_config(environ={"DEEPSIFT_FACES__DETECTOR": "mtcnn"})


def test_out_of_range_names_key():
    with pytest.raises(ConfigError, match=r"sampling\.frames_per_video.*greater than or equal to 1"):
        load_config(environ={"DEEPSIFT_SAMPLING__FRAMES_PER_VIDEO": "0"})


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match=r"spark\.mastr is unknown; allowed keys here: .*master"):
        load_config(environ={"DEEPSIFT_SPARK__MASTR": "local"})


def test_bad_master_names_allowed_prefixes():
    with pytest.raises(ConfigError, match=r"spark\.master.*local\[N\].*spark://host:port"):
        load_config(environ={"DEEPSIFT_SPARK__MASTER": "localhost:7077"})


def test_bad_driver_memory_says_what_a_size_looks_like():
    with pytest.raises(ConfigError, match=r"spark\.driver_memory.*followed by k, m, g or t.*'4 gigs'"):
        load_config(environ={"DEEPSIFT_SPARK__DRIVER_MEMORY": "4 gigs"})


def test_the_driver_jvm_starts_with_half_its_heap_and_room_for_class_metadata(tmp_path):
    """Without both, a one-clip scan's driver ran two full collections for class metadata and two more
    while its heap grew from HotSpot's small default start (docs/benchmarks.md)."""
    from deepsift.lake.session import DRIVER_METASPACE_OPTION

    assert DRIVER_METASPACE_OPTION == "-XX:MetaspaceSize=256m"
    assert DRIVER_METASPACE_OPTION in driver_options(tmp_path)
    assert "-Xms2048m" in driver_options(tmp_path)  # the default spark.driver_memory, 4g
    assert "-Xms384m" in driver_options(tmp_path, **{"spark.driver_memory": "768m"})
    # a heap set through spark.extra_conf is the one the JVM gets: an initial heap above it would stop the JVM
    assert "-Xms512m" in driver_options(tmp_path, **{"spark.extra_conf": {"spark.driver.memory": "1g"}})
    with pytest.raises(ConfigError, match=r"spark\.extra_conf: spark\.driver\.memory must be a number.*'lots'"):
        driver_options(tmp_path, **{"spark.extra_conf": {"spark.driver.memory": "lots"}})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad, environ={})


def test_the_driver_jvm_compiles_quickly_unless_told_otherwise(tmp_path):
    """``spark.driver_jit`` decides the driver JVM's compiler option in the conf every session and
    spark-submit uses."""
    from deepsift.lake.session import QUICK_JIT_CODE_CACHE, QUICK_JIT_OPTION

    assert QUICK_JIT_OPTION == "-XX:TieredStopAtLevel=1"
    assert QUICK_JIT_OPTION in driver_options(tmp_path)
    assert QUICK_JIT_CODE_CACHE in driver_options(tmp_path)  # else the client compiler's 48 MB fill up and it stops
    assert QUICK_JIT_OPTION not in driver_options(tmp_path, **{"spark.driver_jit": "full"})
    assert QUICK_JIT_CODE_CACHE not in driver_options(tmp_path, **{"spark.driver_jit": "full"})
    with pytest.raises(ConfigError, match=r"spark\.driver_jit.*'quick' or 'full'"):
        load_config(environ={"DEEPSIFT_SPARK__DRIVER_JIT": "fast"})


def test_the_driver_jvm_collects_with_the_parallel_collector_unless_g1_is_asked_for(tmp_path, monkeypatch):
    from deepsift.lake.session import DRIVER_GC_OPTIONS, JVM_OPTION_VARIABLES

    for variable in JVM_OPTION_VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    assert DRIVER_GC_OPTIONS == {"parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC"}
    collectors = set(DRIVER_GC_OPTIONS.values())
    assert collectors & set(driver_options(tmp_path)) == {"-XX:+UseParallelGC"}
    assert collectors & set(driver_options(tmp_path, **{"spark.driver_gc": "g1"})) == {"-XX:+UseG1GC"}
    with pytest.raises(ConfigError, match=r"spark\.driver_gc.*'parallel' or 'g1'"):
        load_config(environ={"DEEPSIFT_SPARK__DRIVER_GC": "zgc"})
    # a collector in the environment's JVM options wins: HotSpot would refuse to start with two
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xss2m -XX:+UseSerialGC")
    assert collectors & set(driver_options(tmp_path)) == set()


def test_queries_are_interpreted_unless_compiled_is_asked_for(tmp_path):
    from deepsift.lake.session import INTERPRETED_QUERIES, spark_conf

    def conf(**overrides: str) -> dict[str, str]:
        return spark_conf(load_config(environ={}, overrides={"home": str(tmp_path), **overrides}))

    assert INTERPRETED_QUERIES == {"spark.sql.codegen.factoryMode": "NO_CODEGEN"}
    assert INTERPRETED_QUERIES.items() <= conf().items()
    assert "spark.sql.codegen.factoryMode" not in conf(**{"spark.query_codegen": "compiled"})
    with pytest.raises(ConfigError, match=r"spark\.query_codegen.*'interpreted' or 'compiled'"):
        load_config(environ={"DEEPSIFT_SPARK__QUERY_CODEGEN": "off"})
