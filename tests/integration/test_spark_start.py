"""The class-data archive `make setup` records is what a real driver maps: the warm-up app
that recorded it still runs, with Java told to fail rather than start without the archive
(``-Xshare:on``), and Spark's streaming classes come from it."""

from __future__ import annotations

import pytest

from include.runtime.spark_cds import run_warmup
from include.runtime.spark_launch import class_archive, driver_java_options
from include.settings import Settings

pytestmark = pytest.mark.integration


def test_a_driver_maps_its_classes_from_the_archive_setup_recorded(tmp_path) -> None:
    settings = Settings()
    archive = class_archive(settings)
    assert archive.exists(), f"{archive} is missing: `make setup` records it"
    loads = tmp_path / "class-load.log"
    options = f"{driver_java_options(settings)} -Xshare:on -Xlog:class+load=info:file={loads}"
    done = run_warmup(settings, options, timeout=300, capture_output=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Spark's streaming classes, but lambdas (made at run time, outside any jar).
    streaming = [
        line
        for line in loads.read_text().splitlines()
        if " org.apache.spark.sql.execution.streaming." in line and "$$Lambda" not in line
    ]
    from_jars = [line for line in streaming if "shared objects file (top)" not in line]
    assert len(streaming) > 100 and not from_jars, from_jars[:5]
