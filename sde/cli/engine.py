"""The ``--engine local|spark`` options that ``sde ingest`` and ``sde extract`` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sde.services.home import Home
    from sde.services.spark_engine import SparkSettings

ENGINES = ("local", "spark")

_F = TypeVar("_F", bound=Callable[..., Any])


def engine_options(command: _F) -> _F:
    """``--engine``, ``--spark-cores`` and ``--spark-memory``, as the arguments
    ``engine``, ``spark_cores`` and ``spark_memory``."""
    for option in reversed(
        [
            click.option(
                "--engine",
                type=click.Choice(ENGINES),
                default="local",
                show_default=True,
                help="local: Arrow batches, delta-rs, this process. spark: the same batch "
                "transforms on Apache Spark in local mode (mapInArrow, delta-spark); the same "
                "tables and manifest.",
            ),
            click.option(
                "--spark-cores",
                type=click.IntRange(min=1),
                default=None,
                help="Spark's cores, local[N] (--engine spark; default: spark.cores in "
                "config.yaml, else 2).",
            ),
            click.option(
                "--spark-memory",
                default=None,
                metavar="SIZE",
                help="Spark's memory, e.g. 4g (--engine spark; default: spark.memory in "
                "config.yaml, else 2g).",
            ),
        ]
    ):
        command = option(command)
    return command


def check_engine_options(engine: str, cores: int | None, memory: str | None) -> None:
    """Refuse ``--spark-*`` options without ``--engine spark`` (a usage error, first)."""
    if engine != "spark" and (cores is not None or memory is not None):
        raise click.UsageError("--spark-cores and --spark-memory go with --engine spark")


def spark_settings_for(
    home: Home, engine: str, cores: int | None, memory: str | None
) -> SparkSettings | None:
    """The Spark settings for ``--engine spark`` (``config.yaml``'s, with the options),
    Delta's jars checked; None for ``local`` (check the options first with
    :func:`check_engine_options`)."""
    if engine != "spark":
        return None
    from sde.adapters.spark import delta_jars
    from sde.services.spark_engine import spark_settings

    settings = spark_settings(home).with_overrides(cores=cores, memory=memory)
    delta_jars(settings.jars())
    return settings
