"""Shared helpers of the benchmarks: paths, machine facts, medians, a service launcher.

Standard library only (plus loopwatch itself where a function says so), so the
benchmarks run with the project's own virtualenv and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
#: Scratch space (databases, server logs); git-ignored by the repository.
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
#: The project's interpreter: the service runs with exactly what is installed there.
PYTHON = REPO / ".venv" / "bin" / "python"
if not PYTHON.exists():  # pragma: no cover - a checkout with another venv layout
    PYTHON = Path(sys.executable)

LIBRARIES = (
    "loopwatch", "fastapi", "starlette", "uvicorn", "pydantic", "orjson", "numpy",
    "pandas", "scikit-learn", "psycopg", "psycopg-binary", "uvloop", "httptools",
)  # fmt: skip


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v is not None]
    return float(statistics.median(data)) if data else float("nan")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=20, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def postgres_version() -> str:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from pgserver import find_bindir  # type: ignore[import-not-found]

        return _run([str(find_bindir() / "postgres"), "--version"]) or "unknown"
    except Exception as exc:  # no server installed: say so
        return f"not available ({exc.__class__.__name__})"
    finally:
        sys.path.pop(0)


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    hypervisor = ""
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Hypervisor vendor:"):
            hypervisor = line.split(":", 1)[1].strip()
    libs = {}
    for name in LIBRARIES:
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = None
    fs = _run(["df", "-T", str(REPO)]).splitlines()
    return {
        "cpu_model": cpu,
        "hypervisor": hypervisor or None,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
        "wrk": (_run_merged(["wrk", "-v"]).splitlines() or ["not installed"])[0].split(" [")[0],
        "filesystem": fs[-1].split()[1] if len(fs) > 1 else "unknown",
        "libraries": libs,
        "loadavg_at_start": _loadavg(),
        "git_head": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or None,
        "git_dirty_src_files": len(
            [line for line in _run(["git", "-C", str(REPO), "status", "--porcelain", "src"]).splitlines() if line]
        ),
    }


def _run_merged(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class Service:
    """``python -m loopwatch serve`` in a child process, with our own LOOPWATCH_* settings.

    (``loopwatch.demo.ServiceProcess`` strips LOOPWATCH_* from the child's
    environment, so it cannot turn logging off; this one sets it explicitly.)
    """

    def __init__(
        self,
        database: str,
        *,
        workers: int = 1,
        logging_enabled: bool = True,
        home: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.database = database
        self.workers = workers
        self.logging_enabled = logging_enabled
        self.home = home
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
        env["LOOPWATCH_HOME"] = str(self.home)
        env["LOOPWATCH_LOGGING_ENABLED"] = "1" if self.logging_enabled else "0"
        env.update(self.extra_env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                [
                    str(PYTHON), "-m", "loopwatch", "serve",
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--database", self.database, "--workers", str(self.workers),
                ],  # fmt: skip
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(REPO),
                start_new_session=True,  # its own process group: we stop it and its workers
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the service exited with code {self.process.returncode}; see {self.log_path}"
                )
            if self._ready():
                if self.workers > 1:
                    self._wait_for_workers(deadline)
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the service did not become ready in {timeout:.0f} s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/health/ready", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _wait_for_workers(self, deadline: float) -> None:
        # The first ready answer may come from the first worker up; give the others
        # time to finish importing (each builds its own app and loads the model lazily).
        settle = time.monotonic() + 4.0
        while time.monotonic() < min(settle, deadline):
            self._ready()
            time.sleep(0.2)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        pgid = proc.pid  # start_new_session: the group id is the child's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait()
        # uvicorn's worker processes belong to the same group; make sure none is left
        for _ in range(50):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def fmt_num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


_SIZE = re.compile(r"^([\d.]+)([a-zA-Z]*)$")


def parse_duration_ms(text: str) -> float:
    """wrk durations: ``812.00us``, ``3.21ms``, ``1.20s``, ``2.00m``."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3, "": 1.0}[unit]
    return value * scale


CLK_TCK = os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds(keep: Any) -> float:
    """utime+stime, in seconds, of every live process whose ``/proc/<pid>/stat`` fields
    satisfy ``keep(pid, fields)``; ``fields[0]`` is the state (stat field 3), so the
    ppid is ``fields[1]``, the process group ``fields[2]``, utime and stime 11 and 12."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if keep(int(entry), fields):
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK

