"""Logging and the end-of-run line: plain, syslog-prefixed, unwrapped lines for the journal and pipes;
rich output only for a person at a terminal, without colour when asked."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pytest
from typer.testing import CliRunner, Result

from dpsk_orch.cli import app
from dpsk_orch.log import SyslogPrefixFormatter, colour_wanted, is_interactive, setup_logging
from dpsk_orch.simulator import Simulator, serve_in_thread
from dpsk_orch.simulator.server import write_simulator_config

ANSI = re.compile(r"\x1b\[")
LONG_MESSAGE = "pool " + "x" * 400 + " end"
SUMMARY = re.compile(r"^<6>dpsk-orch sync: orchestrator=parkview run=\d+ (\S+=\S+ )*requests=\d+ duration=\d+\.\ds "
                     r"exit=0$")


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No inherited journal, colour or terminal settings; the package logger restored afterwards."""
    for name in ("JOURNAL_STREAM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "INVOCATION_ID",
                 "DPSK_ORCH_QUIET", "DPSK_ORCH_NO_COLOR", "DPSK_ORCH_JSON", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    logger = logging.getLogger("dpsk_orch")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def log_everything(logger: logging.Logger) -> None:
    logger.debug("a debug event")
    logger.info("an info event")
    logger.warning("a warning event")
    logger.error("an error event")


def plain_log(capsys: pytest.CaptureFixture[str], verbosity: int = 0, quiet: bool = False) -> list[str]:
    log_everything(setup_logging(verbosity, quiet, no_color=False))
    return capsys.readouterr().err.splitlines()


# ---- plain lines (journal, pipe, cron) ----------------------------------------------------------

@pytest.mark.parametrize(("level", "prefix"), [(logging.ERROR, "<3>"), (logging.WARNING, "<4>"),
                                                (logging.INFO, "<6>"), (logging.DEBUG, "<7>")])
def test_each_level_has_its_syslog_priority_prefix(level: int, prefix: str) -> None:
    record = logging.LogRecord("dpsk_orch", level, __file__, 1, "event %s", ("one",), None)
    assert SyslogPrefixFormatter("%(message)s").format(record) == f"{prefix}event one"


def test_not_a_terminal_gets_plain_prefixed_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert not is_interactive()
    assert plain_log(capsys, verbosity=2) == ["<7>a debug event", "<6>an info event", "<4>a warning event",
                                              "<3>an error event"]


def test_a_long_or_multi_line_message_stays_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    logger = setup_logging(0, False, no_color=False)
    logger.warning(LONG_MESSAGE)
    logger.warning("first line\nsecond line")
    assert capsys.readouterr().err.splitlines() == [f"<4>{LONG_MESSAGE}", "<4>first line second line"]


def test_a_traceback_stays_on_the_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    logger = setup_logging(0, False, no_color=False)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("it failed")
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("<3>it failed Traceback") and "RuntimeError: boom" in line


def test_default_shows_warnings_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert plain_log(capsys) == ["<4>a warning event", "<3>an error event"]


def test_one_v_adds_info_and_two_add_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert plain_log(capsys, verbosity=1)[0] == "<6>an info event"
    assert plain_log(capsys, verbosity=2)[0] == "<7>a debug event"


def test_quiet_shows_errors_only_even_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    assert plain_log(capsys, verbosity=2, quiet=True) == ["<3>an error event"]


def test_setting_up_twice_does_not_double_the_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0, False, no_color=False)
    assert plain_log(capsys) == ["<4>a warning event", "<3>an error event"]


# ---- a terminal ---------------------------------------------------------------------------------

@contextmanager
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TextIO, int]]:
    """stderr on a real pseudo-terminal; yields (the stream, the master side to read from). Used inside the
    test body: pytest's output capture puts its own sys.stderr back between a fixture and the test."""
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w", buffering=1)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stderr", stream)
            yield stream, master
    finally:
        stream.close()
        os.close(master)


def read_terminal(master: int) -> str:
    sys.stderr.flush()
    chunks = []
    os.set_blocking(master, False)
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_a_terminal_gets_rich_output_in_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    with terminal(monkeypatch) as (_, master):
        assert is_interactive() and colour_wanted(False)
        setup_logging(0, False, no_color=False).warning("a warning event")
        text = read_terminal(master)
    assert "WARNING" in text and "a warning event" in text and not text.startswith("<4>")
    assert ANSI.search(text)


def test_no_color_flag_on_a_terminal_means_no_escape_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    with terminal(monkeypatch) as (_, master):
        assert is_interactive() and not colour_wanted(True)
        setup_logging(0, False, no_color=True).error("an [error] event")
        text = read_terminal(master)
    assert "ERROR" in text and "an [error] event" in text
    assert not ANSI.search(text)


def test_no_color_variable_on_a_terminal_means_no_escape_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    with terminal(monkeypatch) as (_, master):
        assert is_interactive() and not colour_wanted(False)
        setup_logging(0, False, no_color=False).warning("a warning event")
        text = read_terminal(master)
    assert "a warning event" in text and not ANSI.search(text)


def test_an_empty_no_color_variable_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: only a non-empty value disables colour
    with terminal(monkeypatch):
        assert colour_wanted(False)


def test_journal_stream_naming_stderr_means_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    with terminal(monkeypatch) as (stream, master):
        stat = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        assert not is_interactive() and not colour_wanted(False)
        setup_logging(0, False, no_color=False).warning(LONG_MESSAGE)
        text = read_terminal(master)
    assert text.splitlines() == [f"<4>{LONG_MESSAGE}"]


def test_an_inherited_journal_stream_does_not_hide_the_terminal(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    """A shell started by a service inherits JOURNAL_STREAM; its terminal is still a terminal."""
    other = tmp_path / "other"
    other.touch()
    stat = other.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    with terminal(monkeypatch):
        assert is_interactive()


def test_journal_stream_with_a_pipe_means_plain_lines(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    assert plain_log(capsys) == ["<4>a warning event", "<3>an error event"]


# ---- through the CLI: the one-line summary at the end of every run ------------------------------

@pytest.fixture
def sim_config(tmp_path: Path) -> Iterator[Path]:
    """A running simulator (3 units x 2 passphrases) and the config `dpsk-orch simulator` would write."""
    sim = Simulator(activity_delay_s=0.01)
    sim.add_tenant("tenant-log", "log-client", "log-secret")
    seeded = sim.seed_property("tenant-log", units=3, per_unit=2)
    server = serve_in_thread(sim)
    try:
        yield write_simulator_config(tmp_path / "sim", server.url, seeded, "log-client", "log-secret")
    finally:
        server.stop()


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "40", **(env or {})}, catch_exceptions=False)


def test_sync_under_systemd_ends_with_one_plain_summary_line(sim_config: Path) -> None:
    result = cli("-c", str(sim_config), "sync", env={"JOURNAL_STREAM": "8:12345", "INVOCATION_ID": "abc123"})
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and not ANSI.search(result.stderr)
    assert re.fullmatch(SUMMARY.pattern.replace(r"run=\d+ ", r"run=\d+ invocation=abc123 "), lines[0]), lines[0]
    assert "create=6" in lines[0]


def test_sync_summary_is_not_wrapped_on_a_narrow_pipe(sim_config: Path) -> None:
    result = cli("-c", str(sim_config), "sync", "--dry-run")
    [line] = result.stderr.splitlines()
    assert len(line) > 40 and line.startswith("<6>dpsk-orch sync: orchestrator=parkview dry_run create=6 ")
    assert not ANSI.search(result.stdout + result.stderr)


def test_json_keeps_stdout_machine_readable_and_the_summary_on_stderr(sim_config: Path) -> None:
    result = cli("-c", str(sim_config), "--json", "sync")
    assert result.stdout.lstrip().startswith("{") and '"orchestrators"' in result.stdout
    assert SUMMARY.match(result.stderr.splitlines()[-1])


def test_quiet_sync_that_succeeds_prints_nothing(sim_config: Path) -> None:
    result = cli("-c", str(sim_config), "-q", "sync")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def test_quiet_still_reports_an_error(tmp_path: Path) -> None:
    result = cli("-q", "-c", str(tmp_path / "missing.yaml"), "config", "validate")
    assert result.exit_code == 2
    assert result.stderr and not ANSI.search(result.stderr)


def test_every_error_line_carries_the_error_priority_in_a_pipe(sim_config: Path, tmp_path: Path) -> None:
    config_problem = cli("-c", str(tmp_path / "missing.yaml"), "config", "validate")
    usage_problem = cli("-c", str(sim_config), "sync", "elmstreet")

    for result in (config_problem, usage_problem):
        assert result.exit_code == 2
        assert all(line.startswith("<3>") for line in result.stderr.splitlines()), result.stderr
    assert "<3>error: unknown orchestrator elmstreet (known: parkview)" in usage_problem.stderr


def test_a_usage_error_under_json_is_json_on_stdout_too(sim_config: Path) -> None:
    result = cli("-c", str(sim_config), "--json", "sync", "elmstreet")

    assert result.exit_code == 2
    assert "unknown orchestrator elmstreet" in json.loads(result.stdout)["error"]


def test_verbose_tells_what_the_run_did_step_by_step(sim_config: Path) -> None:
    result = cli("-c", str(sim_config), "-v", "sync")

    assert result.exit_code == 0
    for step in ("got an access token", "DPSK pools on them", "read the site-wide pool", "sending 6 creates",
                 "named 6 of 6 site-wide identities"):
        assert any(line.startswith("<6>") and step in line for line in result.stderr.splitlines()), step
    assert "<7>" not in result.stderr, "request lines are -vv"
