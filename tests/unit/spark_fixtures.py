"""A small local SparkSession for the unit tests of the pure transforms.

No S3 and no Delta: the transforms only need Spark SQL. One session per test module (JVM start
~4 s), stopped at the module's end. The JVM itself outlives the session in the pytest process,
and a later session (an integration test run in the same process) can only use jars that were
on the JVM's class path at launch: so the Maven-resolved jars are passed when they exist.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest
from pyspark.sql import SparkSession

from pyspark_jobs.session import SparkJarsMissingError, spark_jars


def _load_assert_dataframe_equal() -> Callable[..., Any]:
    # `import pyspark.testing` runs its package __init__, which imports pandas-on-Spark: that
    # needs pandas and numpy < 2, while pyarrow 26 (deltalake) needs numpy >= 2. The assertion
    # itself needs neither, so load its module from its file.
    path = Path(pyspark.__file__).parent / "testing" / "utils.py"
    spec = importlib.util.spec_from_file_location("_pyspark_testing_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.assertDataFrameEqual  # type: ignore[no-any-return]


#: `pyspark.testing.assertDataFrameEqual`.
assertDataFrameEqual = _load_assert_dataframe_equal()


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Python UDF workers must run this interpreter (the one with the project installed).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        jars = ",".join(str(jar) for jar in spark_jars())
    except SparkJarsMissingError:
        jars = ""
    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.jars", jars)
        .appName("unit-transforms")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
