"""What the benchmarks share: their own database, Redis db and queue, and
small helpers to time things and print tables.

The benchmarks run outside pytest, against ``BENCH_DATABASE_URL`` (default
the ``console_bench`` database on the local PostgreSQL) and
``BENCH_REDIS_URL`` (default Redis db 5), migrated first; or, on the
embedded default, SQLite and the filesystem broker in a scratch var folder.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/console_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"


def bench_environment(var_dir: Path, *, embedded: bool = False) -> dict[str, str]:
    """Set this process's environment for the console, before Django loads.

    ``embedded``: no database or broker server, as ``make run`` has it: the
    console falls back to SQLite and its own broker under ``var_dir``.
    """
    from cryptography.fernet import Fernet

    values = {
        "CONSOLE_MODE": "embedded",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        "CELERY_QUEUE": f"console-bench-{os.getpid()}",
        "CONSOLE_VAR_DIR": str(var_dir),
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode(),
        # Shared across runs, as on a real worker: uv's wheels and build back-ends.
        "TOOL_CACHE_DIR": os.environ.get("TOOL_CACHE_DIR", str(ROOT / "var" / "bench-cache")),
        "LOG_LEVEL": "WARNING",
    }
    if embedded:
        del values["DATABASE_URL"], values["REDIS_URL"]
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("REDIS_URL", None)
    os.environ.update(values)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    return dict(os.environ)


def ensure_database(url: str) -> None:
    """Create the bench database if it does not exist, then migrate it."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    migrate()


def migrate() -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True, capture_output=True)


def setup_django() -> None:
    import django

    django.setup()


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


@dataclass
class BenchStack:
    """What the end-to-end benchmarks run on: a scratch folder, the console
    set up in it, and a devpi-server (``devpi``) with ``logs`` for the
    workers' logs."""

    tmp: Path
    devpi: Any  # tests.support.devpi.DevpiServer, imported once Django is set up


@contextmanager
def bench_stack(prefix: str, *, embedded: bool) -> Iterator[BenchStack]:
    """1. A loopback OSV stand-in that knows no vulnerability (no
       vulnerability service answers from this machine: a verify would wait
       out its retries, and the ways by hand scan nothing), as the tests do.
    2. A scratch folder, the console's environment in it (``embedded``:
       SQLite and the embedded broker; else the bench database, migrated),
       Django set up.
    3. devpi-server, stopped with the rest at the end."""
    from tests.support.osv_standin import OsvStandin

    osv = OsvStandin().start()
    os.environ["OSV_API_URL"] = osv.url
    try:
        with scratch(prefix) as tmp:
            bench_environment(tmp / "var", embedded=embedded)
            if embedded:
                migrate()
            else:
                ensure_database(os.environ["DATABASE_URL"])
            setup_django()
            from tests.support.devpi import DevpiServer

            devpi = DevpiServer(tmp / "devpi")
            devpi.start()
            try:
                (tmp / "logs").mkdir()
                yield BenchStack(tmp=tmp, devpi=devpi)
            finally:
                devpi.stop()
    finally:
        osv.stop()


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)
