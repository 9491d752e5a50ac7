"""The archive of closed months: `STATE_DIR/reports/YYYY-MM/rN/`, one folder per revision, written once.

    reports/2026-11/r1/   report.json .html .md .txt .csv (.pdf), sla-2026-11-evidence.tar.gz,
                          metadata.json (how and from what it was built), delivered.json (once handed over)
    reports/2026-11/r2/   a rebuild, the same files and changes.json (the figures that differ from r1)

A revision is built in a hidden folder beside it (`.rN.tmp`), each file and the folder synced, then renamed
into place: a reader sees a whole revision or none. A revision is never written again but for
delivered.json, itself written whole by a rename. One builder at a time per month (a lock file), so a
leftover `.rN.tmp` is always a dead builder's, removed before building again."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
REVISION = re.compile(r"r([1-9][0-9]{0,5})")
SERVED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # what a revision's files are named (no dot file)
META, CHANGES, DELIVERED, LOCK = "metadata.json", "changes.json", "delivered.json", ".lock"


def bundle_name(month: str) -> str:
    return f"sla-{month}-evidence.tar.gz"


@dataclass(frozen=True)
class Revision:
    month: str
    number: int
    path: Path

    @property
    def name(self) -> str:
        return f"r{self.number}"

    def meta(self) -> dict[str, Any]:
        return read_json(self.path / META)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_file() and SERVED.fullmatch(p.name))

    @property
    def delivered(self) -> bool:
        return (self.path / DELIVERED).is_file()


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_whole(path: Path, text: str) -> None:
    """`path` written by a rename of a synced file beside it: whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent, directory=True)


class Archive:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / "reports"

    def months(self) -> list[str]:
        """The months with at least one revision, newest first."""
        if not self.root.is_dir():
            return []
        return sorted((p.name for p in self.root.iterdir() if MONTH.fullmatch(p.name) and self.revisions(p.name)),
                      reverse=True)

    def revisions(self, month: str) -> list[Revision]:
        """The month's finished revisions, oldest first."""
        folder = self.root / month
        if not MONTH.fullmatch(month) or not folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := REVISION.fullmatch(p.name)) and p.is_dir()]
        return [Revision(month, n, p) for n, p in sorted(found)]

    def latest(self, month: str) -> Revision | None:
        revs = self.revisions(month)
        return revs[-1] if revs else None

    def file(self, month: str, revision: str, name: str) -> Path | None:
        """A file of a finished revision, by names the archive itself uses only (nothing else is reached)."""
        m = REVISION.fullmatch(revision)
        if not (MONTH.fullmatch(month) and m and SERVED.fullmatch(name)):
            return None
        rev = next((r for r in self.revisions(month) if r.number == int(m.group(1))), None)
        return None if rev is None or name not in rev.files() else rev.path / name

    @contextlib.contextmanager
    def building(self, month: str) -> Iterator[Path]:
        """The next revision's temporary folder, held by this builder alone; a dead builder's leftovers
        are removed first. The caller fills it and calls commit()."""
        folder = self.root / month
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for stale in folder.glob(".r*.tmp"):
                shutil.rmtree(stale, ignore_errors=True)
            n = (self.latest(month).number if self.latest(month) else 0) + 1
            tmp = folder / f".r{n}.tmp"
            tmp.mkdir()
            try:
                yield tmp
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, tmp: Path) -> Revision:
        """Syncs what `tmp` holds and renames it into place as its revision."""
        for p in tmp.iterdir():
            _fsync(p)
        _fsync(tmp, directory=True)
        number = int(tmp.name[2:-4])
        final = tmp.with_name(f"r{number}")
        os.rename(tmp, final)  # fails rather than replace a revision that exists
        _fsync(final.parent, directory=True)
        _fsync(final.parent.parent, directory=True)
        return Revision(final.parent.name, number, final)

    def undelivered(self) -> list[Revision]:
        return [r for m in reversed(self.months()) for r in self.revisions(m) if not r.delivered]

    @staticmethod
    def mark_delivered(rev: Revision, what: dict[str, Any]) -> None:
        write_whole(rev.path / DELIVERED, json.dumps(what, indent=2, sort_keys=True) + "\n")
