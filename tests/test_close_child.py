"""The month's close runs in a process of its own (report/child.py): its answer, its failure and its log
lines come back to the agent, and a cancelled close (a stop) leaves no process behind."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from agent.report.child import ChildFailed, in_child

from .test_month_close import _running


def _answer(x: int) -> tuple[int, int]:
    logging.getLogger("sla_agent.reports").warning("working on %d", x)
    logging.getLogger("sla_agent.reports").debug("not shown at the agent's level")
    return x * 2, os.getpid()


def _fails() -> None:
    raise ValueError("the month has no rows")


def _dies() -> None:
    os._exit(3)


def _stalls(flag: str) -> None:
    Path(flag).write_text(str(os.getpid()))
    time.sleep(120)


async def test_the_answer_and_the_log_lines_come_back(caplog):
    caplog.set_level(logging.INFO, logger="sla_agent")
    value, pid = await in_child(_answer, 21)
    assert value == 42 and pid != os.getpid()
    said = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == "sla_agent.reports"]
    assert said == [("sla_agent.reports", logging.WARNING, "working on 21")]


async def test_the_childs_exception_is_raised_here_and_a_child_that_dies_is_named():
    with pytest.raises(ValueError, match="the month has no rows"):
        await in_child(_fails)
    with pytest.raises(ChildFailed, match="exit code 3"):
        await in_child(_dies)


async def test_a_cancelled_close_leaves_no_process(tmp_path):
    flag = tmp_path / "started"
    task = asyncio.create_task(in_child(_stalls, str(flag)))
    deadline = time.monotonic() + 60
    while not flag.exists():  # another process writes it: polled, bounded
        assert time.monotonic() < deadline and not task.done(), "the child never started"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _running(int(flag.read_text()))  # killed and reaped before the cancel returned
