"""A throwaway PostgreSQL server for the test suite (standard library only).

``ThrowawayPostgres`` runs ``initdb`` into a fresh temporary folder, starts a
private ``postgres`` on a free loopback port (with its unix socket in the same
folder), waits until it accepts connections, and removes everything again on
exit, including after a startup that failed halfway::

    with ThrowawayPostgres() as pg:
        pg.dsn                          # postgresql://postgres@127.0.0.1:PORT/loopwatch_test
        other = pg.create_database("scratch")

PostgreSQL refuses to run as root. When this process is root, the server-side
programs (initdb, postgres) run as the ``postgres`` system user through
``runuser -u postgres --`` (or ``subprocess``'s ``user=`` when ``runuser`` is
missing); otherwise they run directly as the current user. Client programs
(pg_isready, psql) connect over TCP with ``trust`` authentication, so they run
as whoever we are.

Durability is switched off (``fsync``, ``synchronous_commit``,
``full_page_writes``): this is for throwaway test servers only.

Environment overrides:

``LOOPWATCH_PG_BINDIR``
    folder that holds initdb/postgres/pg_ctl (default: ``pg_config --bindir``,
    then the newest ``/usr/lib/postgresql/*/bin``).
``LOOPWATCH_PG_TMPDIR``
    parent of the temporary data folder (default ``/tmp``). Every folder
    above it must be traversable by the ``postgres`` user.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "PostgresNotInstalled",
    "PostgresStartupError",
    "ThrowawayPostgres",
    "find_bindir",
]

#: Settings passed as ``-c name=value`` to every throwaway server.
TEST_SETTINGS: dict[str, str] = {
    # Durability is worthless for a server that is deleted after the session.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

_REQUIRED_PROGRAMS = ("initdb", "postgres")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LOG_TAIL_LINES = 40


class PostgresStartupError(RuntimeError):
    """The throwaway server could not be created, started or used."""


class PostgresNotInstalled(PostgresStartupError):
    """No usable PostgreSQL server binaries (or no ``postgres`` user) here."""


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _has_server_programs(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _REQUIRED_PROGRAMS)


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); unknown shapes sort first.
    numbers = re.findall(r"\d+", Path(path).parent.name)
    return tuple(int(n) for n in numbers) or (-1,)


def find_bindir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder with the PostgreSQL *server* programs.

    Order: ``explicit``, ``$LOOPWATCH_PG_BINDIR``, ``pg_config --bindir``,
    the newest ``/usr/lib/postgresql/*/bin`` (Debian/Ubuntu),
    ``/usr/pgsql-*/bin`` (RHEL/PGDG), the folder of ``initdb`` on ``PATH``.
    ``pg_config`` may belong to a libpq-dev whose server is not installed, so
    every candidate is checked for initdb and postgres.
    """
    candidates: list[str] = []
    if explicit:
        candidates.append(os.fspath(explicit))
    if os.environ.get("LOOPWATCH_PG_BINDIR"):
        candidates.append(os.environ["LOOPWATCH_PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=15,
                check=True,
            ).stdout.strip()
            if out:
                candidates.append(out)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += sorted(glob.glob("/usr/pgsql-*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))

    for candidate in candidates:
        if _has_server_programs(Path(candidate)):
            return Path(candidate)
    looked = ", ".join(dict.fromkeys(candidates)) or "nowhere (no pg_config, no /usr/lib/postgresql/*/bin)"
    raise PostgresNotInstalled(
        "PostgreSQL server programs (initdb, postgres) not found; looked in: "
        f"{looked}. Install them with scripts/ensure-postgres.sh or set LOOPWATCH_PG_BINDIR."
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(kept) if kept else "(server log is empty)"


def _clean_env() -> dict[str, str]:
    # PGHOST/PGPORT/PGOPTIONS/PGDATA... from the caller's shell must not leak
    # into our own server and client calls.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


def _default_tmp_parent() -> str:
    configured = os.environ.get("LOOPWATCH_PG_TMPDIR")
    if configured:
        return configured
    # Not tempfile.gettempdir(): $TMPDIR may point somewhere the postgres user
    # cannot enter, and may be too long for a unix socket path (107 bytes).
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _child_pid(parent: int) -> int | None:
    """PID of a child of ``parent`` (Linux /proc), or None."""
    for stat_file in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat_file, encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(parent):
            return int(Path(stat_file).parent.name)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- #
# the server
# --------------------------------------------------------------------------- #


class ThrowawayPostgres:
    """A private PostgreSQL server in a temporary folder; a context manager.

    Parameters
    ----------
    dbname:
        Database created once the server is up; ``.dsn`` points to it.
    bindir:
        Folder with the server programs (see :func:`find_bindir`).
    port:
        Fixed TCP port; default: a free port chosen at start.
    startup_timeout:
        Seconds to wait for the server to accept connections.
    settings:
        Extra ``-c name=value`` server settings (added to :data:`TEST_SETTINGS`).
    os_user:
        System user that runs the server when we are root.
    """

    host = "127.0.0.1"
    superuser = "postgres"

    def __init__(
        self,
        dbname: str = "loopwatch_test",
        *,
        bindir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
        settings: dict[str, str] | None = None,
        os_user: str = "postgres",
        tmp_parent: str | os.PathLike[str] | None = None,
    ) -> None:
        _check_db_name(dbname)
        self.dbname = dbname
        self._bindir_hint = bindir
        self._fixed_port = port
        self.startup_timeout = startup_timeout
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        self.os_user = os_user
        self._tmp_parent = tmp_parent

        self.bindir: Path | None = None
        self.base_dir: Path | None = None  # temp folder; also the socket folder
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: tuple[int, int] | None = None  # (uid, gid) when root
        self._runuser: str | None = None
        self._env = _clean_env()

    # -- paths & addresses --------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._require_base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_base()

    @property
    def log_path(self) -> Path:
        return self._require_base() / "postgres.log"

    @property
    def dsn(self) -> str:
        """libpq URL of the database created at start (``dbname``)."""
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        if self.port is None:
            raise PostgresStartupError("the server has not been started")
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{dbname}"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        if self.base_dir is None:
            return "(no server log: the data folder was never created or is already removed)"
        return _tail(self.log_path, lines)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ThrowawayPostgres {state} port={self.port} dir={self.base_dir}>"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- context manager ------------------------------------------------------

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> ThrowawayPostgres:
        """Create, start and wait for the server; clean up if any step fails."""
        if self._proc is not None:
            return self
        started = time.monotonic()
        atexit.register(self.stop)  # safety net if nobody calls stop()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _start(self) -> None:
        self.bindir = find_bindir(self._bindir_hint)
        self._decide_identity()
        self._make_base_dir()
        self._initdb()

        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            self.port = self._fixed_port or _free_port(self.host)
            self._launch()
            try:
                self._wait_until_ready()
                break
            except PostgresStartupError:
                port_taken = "could not bind" in self.log_tail(200) or "in use" in self.log_tail(200)
                if attempt < attempts and port_taken:
                    # Someone grabbed the port between _free_port and bind: retry.
                    self._stop_server()
                    with contextlib.suppress(OSError):
                        self.log_path.unlink()
                    continue
                raise

        self.create_database(self.dbname)

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and delete its folder. Idempotent."""
        atexit.unregister(self.stop)
        try:
            self._stop_server()
        finally:
            base, self.base_dir = self.base_dir, None
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)

    # -- steps ------------------------------------------------------------------

    def _decide_identity(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd  # POSIX only; imported lazily

        try:
            entry = pwd.getpwnam(self.os_user)
        except KeyError:
            raise PostgresNotInstalled(
                f"running as root, but there is no {self.os_user!r} system user to run "
                "PostgreSQL as (PostgreSQL refuses to run as root). "
                "Run scripts/ensure-postgres.sh."
            ) from None
        self._run_as = (entry.pw_uid, entry.pw_gid)
        self._runuser = shutil.which("runuser")

    def _make_base_dir(self) -> None:
        parent = Path(self._tmp_parent or _default_tmp_parent())
        self.base_dir = Path(tempfile.mkdtemp(prefix="loopwatch-pg-", dir=parent))
        socket_path = self.base_dir / ".s.PGSQL.65535"
        if len(os.fsencode(socket_path)) > 107:
            raise PostgresStartupError(
                f"unix socket path {socket_path} is too long; set LOOPWATCH_PG_TMPDIR to a shorter folder"
            )
        if self._run_as is not None:
            uid, gid = self._run_as
            for folder in self.base_dir.parents:
                st = folder.stat()
                if st.st_mode & stat.S_IXOTH or st.st_uid == uid or (st.st_gid == gid and st.st_mode & stat.S_IXGRP):
                    continue
                raise PostgresStartupError(
                    f"the {self.os_user!r} user cannot enter {folder} (mode {stat.filemode(st.st_mode)}), "
                    f"so it cannot reach {self.base_dir}; set LOOPWATCH_PG_TMPDIR to a folder it can reach"
                )
            os.chown(self.base_dir, uid, gid)
        os.chmod(self.base_dir, 0o700)

    def _wrap(self, argv: list[str]) -> tuple[list[str], dict[str, object]]:
        """Command line and Popen kwargs that run ``argv`` as the server user."""
        if self._run_as is None:
            return argv, {}
        if self._runuser:
            return [self._runuser, "-u", self.os_user, "--", *argv], {}
        uid, gid = self._run_as
        return argv, {"user": uid, "group": gid, "extra_groups": []}

    def _program(self, name: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / name)

    def _initdb(self) -> None:
        argv, extra = self._wrap(
            [
                self._program("initdb"),
                "-D", str(self.data_dir),
                "-A", "trust",
                "-U", self.superuser,
                "-E", "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )  # fmt: skip
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=self._env,
                timeout=120,
                **extra,  # type: ignore[arg-type]
            )
        except subprocess.TimeoutExpired as exc:
            output = (exc.output or b"").decode(errors="replace")
            raise PostgresStartupError(f"initdb timed out after 120 s:\n{output[-4000:]}") from None
        if result.returncode != 0:
            output = result.stdout.decode(errors="replace")
            raise PostgresStartupError(
                f"initdb failed (exit code {result.returncode}): {' '.join(argv)}\n{output[-4000:]}"
            )

    def _launch(self) -> None:
        assert self.port is not None
        argv = [
            self._program("postgres"),
            "-D", str(self.data_dir),
            "-k", str(self.socket_dir),
            "-h", self.host,
            "-p", str(self.port),
        ]  # fmt: skip
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        argv, extra = self._wrap(argv)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=self._env,
                # Own session: a Ctrl-C in the terminal goes to pytest (which
                # then stops us cleanly), not straight to the server.
                start_new_session=True,
                **extra,  # type: ignore[arg-type]
            )

    def _wait_until_ready(self) -> None:
        assert self._proc is not None and self.port is not None
        pg_isready = self.bindir / "pg_isready" if self.bindir else None
        use_isready = pg_isready is not None and os.access(pg_isready, os.X_OK)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PostgresStartupError(
                    f"postgres exited with code {code} during startup.\n"
                    f"--- tail of {self.log_path} ---\n{self.log_tail()}"
                )
            if use_isready:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    probe = subprocess.run(
                        [str(pg_isready), "-q", "-h", self.host, "-p", str(self.port),
                         "-U", self.superuser, "-d", "postgres", "-t", "2"],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=self._env,
                        timeout=5,
                    )  # fmt: skip
                    if probe.returncode == 0:
                        return
            elif self._tcp_accepts() and "ready to accept connections" in self.log_tail(200):
                return
            if time.monotonic() > deadline:
                raise PostgresStartupError(
                    f"postgres did not accept connections on {self.host}:{self.port} within "
                    f"{self.startup_timeout:.0f} s.\n--- tail of {self.log_path} ---\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _tcp_accepts(self) -> bool:
        assert self.port is not None
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first_line.strip())
        except (OSError, IndexError, ValueError, PostgresStartupError):
            return None

    def _stop_server(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # Immediate shutdown = SIGQUIT to the postmaster (what
            # `pg_ctl stop -m immediate` sends). We signal it ourselves: as root
            # we may, and it avoids another runuser round trip. When wrapped by
            # runuser, proc is runuser and the postmaster is its child.
            postmaster = self._postmaster_pid()
            if postmaster is None:
                # Stopped before postmaster.pid was written: it is proc itself,
                # or runuser's child.
                postmaster = proc.pid if self._runuser is None else _child_pid(proc.pid)
            if postmaster is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(postmaster, signal.SIGQUIT)
            else:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()  # runuser passes SIGTERM on to its child
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                if postmaster is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(postmaster, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        else:
            proc.wait()
        # The postmaster may outlive a killed runuser; make sure it is gone.
        postmaster = self._postmaster_pid()
        if postmaster is not None and postmaster != proc.pid and _pid_alive(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGQUIT)
            for _ in range(100):
                if not _pid_alive(postmaster):
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(postmaster, signal.SIGKILL)

    def _require_base(self) -> Path:
        if self.base_dir is None:
            raise PostgresStartupError("the server folder does not exist (not started, or already stopped)")
        return self.base_dir

    # -- SQL via psql -------------------------------------------------------------

    def execute(self, sql: str, dbname: str = "postgres") -> str:
        """Run ``sql`` with psql as the superuser; return its output."""
        if not self.running:
            raise PostgresStartupError(f"the server is not running.\n--- server log ---\n{self.log_tail()}")
        argv = [
            self._program("psql"),
            "-X", "-q", "-A", "-t",
            "-v", "ON_ERROR_STOP=1",
            "-h", self.host,
            "-p", str(self.port),
            "-U", self.superuser,
            "-d", dbname,
            "-c", sql,
        ]  # fmt: skip
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self._env,
            timeout=60,
        )
        if result.returncode != 0:
            raise PostgresStartupError(
                f"psql failed (exit code {result.returncode}) running {sql!r}: {result.stderr.strip()}\n"
                f"--- tail of {self.log_path} ---\n{self.log_tail()}"
            )
        return result.stdout

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` and return its DSN."""
        _check_db_name(name)
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            _check_db_name(template)
            sql += f' TEMPLATE "{template}"'
        self.execute(sql)
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing any sessions still in it."""
        _check_db_name(name)
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}: use letters, digits and _ (max 63)")
