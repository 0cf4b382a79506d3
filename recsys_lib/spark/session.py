"""Spark availability (pyspark, Java 17+) with install advice, and a local session that leaves no
process-wide state behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from recsys_lib.runtime import temporary_environ

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import SparkSession


MIN_JAVA = 17
INSTALL_HINT = (
    "Java 17 is required: check `java -version`; install with e.g. "
    "`sudo apt-get install openjdk-17-jre-headless` (or set JAVA_HOME to a JDK 17+)."
)


class SparkUnavailableError(RuntimeError):
    """pyspark or a suitable Java runtime is missing."""


# ----------------------------------------------------------------------------------------
# Environment checks and the session helper
# ----------------------------------------------------------------------------------------


def java_version() -> int | None:
    """Major version of the Java that Spark would start (JAVA_HOME first, then PATH).

    Returns None when no ``java`` executable is found or it cannot report a version.
    """
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home, "bin", "java") if home else None
    java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if java is None:
        return None
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2)) if major == 1 and match.group(2) else major


def spark_unavailable_reason() -> str | None:
    """Why Spark cannot run here (a sentence), or None when pyspark and Java 17+ are present."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return (
            "pyspark is not installed: install the optional extra with "
            "`pip install -e '.[spark]'` (pyspark and pyarrow)."
        )
    version = java_version()
    if version is None:
        return f"no Java runtime found (java not on PATH and JAVA_HOME unset). {INSTALL_HINT}"
    if version < MIN_JAVA:
        return f"Java {version} found but Spark 4 needs Java {MIN_JAVA}+. {INSTALL_HINT}"
    return None


def require_spark() -> None:
    """Raise :class:`SparkUnavailableError` with the reason and the fix if Spark cannot run."""
    reason = spark_unavailable_reason()
    if reason:
        raise SparkUnavailableError(reason)


def local_cores(master: str) -> int:
    """Cores a ``local[n]`` / ``local[*]`` / ``local`` master uses; os.cpu_count() otherwise."""
    match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if match is None or match.group(1) in (None, "*"):
        if match is not None and match.group(1) is None:
            return 1
        return os.cpu_count() or 1
    return int(match.group(1))


def _write_log4j_file(folder: str, level: str) -> str:
    """A log4j2 properties file in ``folder`` that lets only ``level`` and above through."""
    path = Path(folder) / "log4j2.properties"
    path.write_text(
        "rootLogger.level = " + level.lower() + "\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
    )
    return str(path)


#: pyspark 4.3 warns on every pandas conversion under pandas 3; the conversions the library
#: makes (numeric and array columns) are covered by the tests.
PANDAS_CONVERSION_WARNINGS = (
    "PySpark does not yet fully support pandas",
    "The copy keyword is deprecated",
)


@contextlib.contextmanager
def quiet_pandas_conversions() -> Iterator[None]:
    """Silence :data:`PANDAS_CONVERSION_WARNINGS` inside a ``with`` block only."""
    with warnings.catch_warnings():
        for message in PANDAS_CONVERSION_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def spark_config(
    master: str = "local[*]",
    *,
    driver_memory: str = "4g",
    shuffle_partitions: int | None = None,
    log_file: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The configuration :func:`spark_session` uses, as a plain dict (inspect or reuse it).

    Shuffle partitions default to 2 x the local cores (Spark's default of 200 makes every
    small local job spend most of its time scheduling empty tasks). ``log_file``: a log4j2
    properties file for the driver JVM (:func:`spark_session` writes a private one that
    lets only its ``log_level`` through); without one Spark's default logging applies.
    """
    cores = local_cores(master)
    partitions = shuffle_partitions or max(2, 2 * cores)
    config = {
        "spark.master": master,
        "spark.app.name": "recsys-llm-notebooks",
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.session.timeZone": "UTC",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
    }
    if log_file is not None:
        config["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log_file}"
    config.update(extra or {})
    return config


def spark_session(
    master: str = "local[*]",
    *,
    app_name: str = "recsys-llm-notebooks",
    driver_memory: str = "4g",
    shuffle_partitions: int | None = None,
    log_level: str = "ERROR",
    extra: dict[str, str] | None = None,
) -> SparkSession:
    """A SparkSession with sane local defaults: bounded driver memory, shuffle partitions
    sized to the cores, Arrow on, UI off, quiet logs, workers on this Python. Leaves no
    environment variable, warning filter or file behind (see :func:`quiet_pandas_conversions`
    for pyspark's pandas warnings).

    Reuses a running session (Spark allows one per process); stop it with ``spark.stop()``.
    Raises :class:`SparkUnavailableError` naming what is missing when pyspark or Java 17+
    is absent.
    """
    require_spark()
    from pyspark.sql import SparkSession

    # Python workers must be this interpreter (same numpy, same recsys_lib). pyspark reads
    # these when the session (and its JVM) starts, so they are set for that moment only;
    # the JVM also reads its log4j2 file then, so the file lives in a folder removed after.
    python = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
              "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="recsys_spark_") as folder:
        config = spark_config(
            master,
            driver_memory=driver_memory,
            shuffle_partitions=shuffle_partitions,
            log_file=_write_log4j_file(folder, log_level),
            extra=extra,
        )
        config["spark.app.name"] = app_name
        builder = SparkSession.builder
        for key, value in config.items():
            builder = builder.config(key, value)
        with temporary_environ(python, keep_existing=True):
            spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    return spark


# ----------------------------------------------------------------------------------------
