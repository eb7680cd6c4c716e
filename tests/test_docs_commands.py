"""Every command the README and ``docs/*.md`` show runs as written.

The shell blocks (fenced ``bash``, ``sh`` or ``console``) of each page are read line by
line (a trailing backslash continues a command). Each command either runs or is skipped
by one of the rules in :data:`SKIPPED`, which say why; a command no rule knows fails the
test, so nothing is left out silently.

The commands run through ``bash`` as written, in order, on a copy of the demo's folder
(``loopwatch demo --days 70 --per-day 300``, built once per session): its database
(``LOOPWATCH_DATABASE``) and the files the demo leaves beside it (``customers.csv``,
``labels.csv``, ...: see :mod:`loopwatch.demo.files`). Each page gets its own copy, so
one page's changes never reach another's. Only the service's port is substituted
(``8000`` by a free one), so that a test run never collides with a service on 8000.

``loopwatch serve`` and ``loopwatch watch`` keep running: they start in the background,
``serve`` must answer ``/v1/health/live`` and ``watch`` must still be watching after a
few seconds; both are stopped when the page is done. A ``curl`` to the service needs one:
when a page does not start it, the test does (with the page's database), and the answer
must be JSON that is not an error. A command passes with exit code 0, or 1 for the
commands whose 1 reports a finding (:data:`FINDING_EXIT_1`).

A page may show a script to save and run: a block fenced ``python file=NAME.py`` and, after
it, the command ``python NAME.py``. That command runs, with this interpreter, on the script
as the page shows it, written into the page's folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_FENCES = ("bash", "sh", "console")
#: A script the page shows (fence ``python file=NAME.py``), and the command that runs it.
SCRIPT_FENCE = re.compile(r"^python file=(?P<name>[\w.-]+\.py)$")
SCRIPT_COMMAND = re.compile(r"^python3? (?P<name>[\w.-]+\.py)$")
#: The demo the commands run on: its default seed, long enough for every dated command
#: (its period is 2026-01-05 to 2026-03-16), with few rows a day to stay quick.
DEMO_ARGS = ("--days", "70", "--per-day", "300", "--seed", "7")
#: The port the docs show for the service.
DOCUMENTED_PORT = "8000"

#: Commands not run, each by a named rule and why. Matched on the command as written.
SKIPPED: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("installs", re.compile(r"^python3? -m venv\b|\bpip install\b"),
     "creates a virtualenv and installs packages from the internet"),
    ("test suite", re.compile(r"^bash scripts/test\.sh\b"),
     "installs the test extras and PostgreSQL, then runs every test, this one included"),
    ("test suite", re.compile(r"^(\.venv/bin/)?python3? -m pytest\b"),
     "runs tests: the suite runs them itself"),
    ("benchmarks", re.compile(r"^(bash|(\.venv/bin/)?python3?) benchmarks/"),
     "measurements that take minutes to hours, some with peer virtualenvs installed from the internet"),
)
#: Subcommands whose exit code 1 reports a finding rather than a failure (docs/cli.md).
FINDING_EXIT_1 = frozenset({"monitor", "drift", "loops", "gate"})
#: Subcommands that run until stopped.
LONG_RUNNING = frozenset({"serve", "watch", "ui"})
#: Seconds a command may take (the longest, ``loops`` over 70 days, takes well under a minute).
COMMAND_TIMEOUT = 600
#: Seconds for a page, with the demo built before the first (the README's takes about 3 minutes
#: on 2 idle cores, 5 on busy ones).
PAGE_TIMEOUT = 1200


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str
    #: The source of the script a ``python NAME.py`` command runs, as the page shows it.
    script: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"

    @property
    def subcommand(self) -> str | None:
        words = self.text.split()
        return words[1] if len(words) > 1 and words[0] == "loopwatch" else None


def documented_commands(page: Path) -> list[Command]:
    """The commands of a page's shell blocks, with the line each starts on."""
    commands: list[Command] = []
    scripts: dict[str, list[str]] = {}
    fence: str | None = None
    pending: tuple[int, str] | None = None
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            shown = SCRIPT_FENCE.match(fence or "")
            if shown:
                scripts[shown["name"]] = []
            continue
        shown = SCRIPT_FENCE.match(fence or "")
        if shown:
            scripts[shown["name"]].append(line)
            continue
        if fence not in SHELL_FENCES or (not stripped and pending is None):
            continue
        if pending is None and stripped.startswith("#"):
            continue
        if fence == "console":
            stripped = stripped.removeprefix("$ ")
        start, text = pending if pending is not None else (number, "")
        if stripped.endswith("\\"):
            pending = (start, text + stripped[:-1].rstrip() + " ")
            continue
        pending = None
        name = str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name
        script = SCRIPT_COMMAND.match(text + stripped)
        source = scripts.get(script["name"]) if script else None
        commands.append(Command(page=name, line=start, text=text + stripped,
                                script=None if source is None else "\n".join(source) + "\n"))
    return commands


def skip_rule(command: Command) -> tuple[str, str] | None:
    """The rule that skips a command and why, or ``None`` when it runs."""
    for name, pattern, why in SKIPPED:
        if pattern.search(command.text):
            return name, why
    return None


def runs(command: Command) -> bool:
    if command.script is not None:
        return True
    return skip_rule(command) is None and command.text.split()[0] in ("loopwatch", "curl")


ALL_COMMANDS = [c for page in PAGES for c in documented_commands(page)]
PAGES_TO_RUN = sorted({c.page for c in ALL_COMMANDS if runs(c)})


# --- fast checks of the reading and the rules ----------------------------------------------


def test_every_documented_command_runs_or_is_skipped_by_a_named_rule() -> None:
    unknown = [c.where for c in ALL_COMMANDS if not runs(c) and skip_rule(c) is None]
    assert not unknown, "commands no rule runs or skips:\n" + "\n".join(unknown)


@pytest.mark.parametrize("command", [c for c in ALL_COMMANDS if not runs(c)], ids=lambda c: f"{c.page}:{c.line}")
def test_each_command_not_run_is_reported_with_its_rule(command: Command) -> None:
    rule = skip_rule(command)
    assert rule is not None, f"{command.where}: no rule runs or skips it"
    pytest.skip(f"{command.where}\n  not run, rule {rule[0]!r}: {rule[1]}")


def test_the_readme_install_and_test_lines_are_skipped_and_the_rest_of_it_runs() -> None:
    readme = documented_commands(ROOT / "README.md")
    first, second = readme[:2]
    assert skip_rule(first) == ("installs", SKIPPED[0][2]) and first.text.endswith("loopwatch demo")
    assert skip_rule(second) is not None and skip_rule(second)[0] == "test suite"  # type: ignore[index]
    assert all(runs(c) for c in readme[2:]), [c.where for c in readme[2:] if not runs(c)]
    assert {"train", "serve", "monitor", "loops", "retrain", "gate", "watch"} <= {c.subcommand for c in readme}


def test_continued_lines_make_one_command(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n```bash\n# a comment\nloopwatch a \\\n    --b c\n\ncurl x\n```\n```python\nloopwatch no\n```\n")
    assert documented_commands(page) == [Command(page.name, 4, "loopwatch a --b c"), Command(page.name, 7, "curl x")]


def test_a_script_the_page_shows_runs_where_the_page_runs_it(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python file=make.py\nprint('made')\n```\n```bash\npython make.py\npython other.py\n```\n"
                    "```python\nnot = 'a script'\n```\n")
    made, other = documented_commands(page)
    assert made == Command(page.name, 5, "python make.py", script="print('made')\n") and runs(made)
    assert other.script is None and not runs(other) and skip_rule(other) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    runner = Page(empty, tmp_path / "run", port=8001)
    runner.run(made)
    assert (runner.folder / "make.py").read_text() == "print('made')\n"
    with pytest.raises(AssertionError, match="exit code 1"):
        runner.run(Command("docs/x.md", 3, "python make.py", script="raise SystemExit(1)\n"))


def test_a_failing_command_names_its_page_line_and_stderr(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    page = Page(empty, tmp_path / "run", port=8001)
    page.run(Command("docs/x.md", 7, "loopwatch models list --json"))  # an empty store: nothing to list, exit 0
    with pytest.raises(AssertionError) as failed:
        page.run(Command("docs/x.md", 9, "loopwatch gate churn --since 2026-03-01"))
    message = str(failed.value)
    assert message.startswith("docs/x.md:9: loopwatch gate churn --since 2026-03-01\nexit code 2")
    assert "--- stderr ---\nerror: " in message and "churn" in message
    curl = Command("docs/x.md", 11, "curl -s localhost:8000/v1/models")
    assert _answered(curl, '{"models": []}') and _answered(curl, "[]")
    assert not _answered(curl, '{"error": {"status": 422, "code": "invalid_input", "message": "..."}}')
    assert not _answered(curl, "<html>Internal Server Error</html>") and not _answered(curl, "")


# --- running them on the demo --------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs-demo") / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "loopwatch", "demo", "--json", *DEMO_ARGS, "--dir", str(folder)],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env=_environment(folder.parent / "home"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(json.loads(done.stdout)["files"]) >= {"customers.csv", "labels.csv"}
    return folder


def _environment(home: Path, database: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
    env["LOOPWATCH_HOME"] = str(home)
    if database is not None:
        env["LOOPWATCH_DATABASE"] = str(database)
    # the docs' `loopwatch` is this interpreter's, with this tree's code (PYTHONPATH passes through)
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "loopwatch"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m loopwatch "$@"\n')
    launcher.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


class Page:
    """One page's commands on its own copy of the demo folder."""

    def __init__(self, demo: Path, workdir: Path, port: int) -> None:
        self.folder = workdir / "demo"
        shutil.copytree(demo, self.folder, ignore=shutil.ignore_patterns("*.writelock", "service.log"))
        self.env = _environment(workdir / "home", self.folder / "loopwatch.db")
        # the docs' schedule belongs to `watch`; a served page evaluates only when asked
        self.serve_env = {**self.env, "LOOPWATCH_SCHEDULE_ENABLED": "0"}
        self.port = str(port)
        self.background: list[tuple[Command, subprocess.Popen[str], Path]] = []
        self.served = False

    def substitute(self, text: str) -> str:
        text = text.replace(f"localhost:{DOCUMENTED_PORT}", f"127.0.0.1:{self.port}")
        return re.sub(rf"--port\s+{DOCUMENTED_PORT}\b", f"--port {self.port}", text)

    def run(self, command: Command) -> None:
        if command.subcommand in LONG_RUNNING and "--once" not in command.text.split():
            self.start(command)
            return
        if command.text.startswith("curl") and not self.served:
            self.start(Command(command.page, command.line, f"loopwatch serve --port {DOCUMENTED_PORT}"))
        if command.script is not None:
            name = SCRIPT_COMMAND.match(command.text)["name"]  # type: ignore[index]
            (self.folder / name).write_text(command.script)
            argv = [sys.executable, name]
        else:
            argv = ["bash", "-c", self.substitute(command.text)]
        done = subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        allowed = {0, 1} if command.subcommand in FINDING_EXIT_1 else {0}
        if done.returncode not in allowed or "Traceback" in done.stderr or not _answered(command, done.stdout):
            raise AssertionError(_failure(command, done.returncode, done.stdout, done.stderr))

    def start(self, command: Command) -> None:
        logs = self.folder / f"background-{len(self.background)}"
        with open(f"{logs}.out", "w") as out, open(f"{logs}.err", "w") as err:  # a pipe nobody reads would fill
            process = subprocess.Popen(
                ["bash", "-c", "exec " + self.substitute(command.text)], cwd=self.folder,
                env=self.serve_env if command.subcommand == "serve" else self.env,
                stdout=out, stderr=err, text=True, start_new_session=True,
            )
        self.background.append((command, process, logs))
        if command.subcommand == "serve":
            self.served = True
            self._wait_for_health(command, process, logs)
            return
        time.sleep(5)  # long enough to start watching, or to fail at the start
        if process.poll() is not None:
            raise AssertionError(_failure(command, process.returncode, *_read(logs)))

    def _wait_for_health(self, command: Command, process: subprocess.Popen[str], logs: Path) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(_failure(command, process.returncode, *_read(logs)))
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v1/health/live", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{command.where}\ndid not answer /v1/health/live within 120 s")

    def stop(self) -> list[str]:
        """Stop what runs in the background (Ctrl-C, as a person would); the problems seen."""
        problems = []
        for command, process, logs in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    problems.append(f"{command.where}\ndid not stop within 60 s of Ctrl-C")
            else:
                problems.append(_failure(command, process.returncode, *_read(logs)) + "\n(it stopped by itself)")
            out, err = _read(logs)
            if "Traceback" in err:
                problems.append(_failure(command, process.returncode, out, err))
        self.background.clear()
        return problems


def _answered(command: Command, stdout: str) -> bool:
    """A curl's answer is JSON and not the one error shape; other commands answer by exit code."""
    if not command.text.startswith("curl"):
        return True
    try:
        answer = json.loads(stdout)
    except ValueError:
        return False
    return isinstance(answer, list) or (isinstance(answer, dict) and "error" not in answer)


def _read(logs: Path) -> tuple[str, str]:
    return Path(f"{logs}.out").read_text(), Path(f"{logs}.err").read_text()


def _failure(command: Command, code: int | None, stdout: str, stderr: str) -> str:
    return (f"{command.where}\nexit code {code}\n--- stderr ---\n{stderr[-4000:]}"
            f"\n--- stdout ---\n{stdout[-1500:]}")


@pytest.fixture
def page_runner(demo_folder: Path, tmp_path: Path) -> Iterator[Page]:
    from loopwatch.demo.runner import free_port

    page = Page(demo_folder, tmp_path, free_port())
    try:
        yield page
    finally:
        problems = page.stop()
        assert not problems, "\n\n".join(problems)


@pytest.mark.slow
@pytest.mark.timeout(PAGE_TIMEOUT)
@pytest.mark.parametrize("page", PAGES_TO_RUN)
def test_the_commands_of_the_page_run_as_written(page: str, page_runner: Page) -> None:
    commands = [c for c in ALL_COMMANDS if c.page == page and runs(c)]
    for command in commands:
        page_runner.run(command)
