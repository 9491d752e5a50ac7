"""Crafted evidence bundles, real .tar.gz files: a location named to leave the unpacking folder, members
that are links, devices, outside the bundle's folder, twice in it or larger than such a file can be. Each
is refused with exit 1 and a message naming it, never a traceback, and nothing is written outside."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from agent.cli import main

CONFIG = b'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]\n'


def _report(names: object) -> bytes:
    return json.dumps({"month": "2026-03", "locations": {"names": names},
                       "evidence": {"generated_epoch": 1773100000, "until_epoch": 1773100000,
                                    "locations": {}}}).encode()


def _files(names: object, ledgers: list[str], **replaced: bytes) -> dict[str, bytes]:
    """The files of an unsigned bundle over locations `names`, with the manifest a forger would make."""
    files = {"report.json": _report(names), "config.yaml": CONFIG}
    files.update({f"{k.replace('_', '.')}": v for k, v in replaced.items()})
    files.update({f"ledger-{n}.db": b"SQLite format 3\x00" for n in ledgers})
    files["MANIFEST.json"] = json.dumps({"month": "2026-03", "files": {
        n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}).encode()
    return files


def _bundle(path: Path, files: dict[str, bytes], extra: tuple[tarfile.TarInfo, ...] = (), first: bool = False) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in extra if first else ():
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
        for name, data in files.items():
            info = tarfile.TarInfo(f"sla-2026-03-evidence/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in () if first else extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _verify(path: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["evidence", "verify", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name, ledgers", [("..", [".."]), (".", ["."]), ("/abs", []), ("a/../b", []), ("", []),
                                           ("a\x00b", []), (5, []), (None, []), ("x" * 64, ["x" * 63])])
def test_a_location_name_that_is_not_one_is_refused(tmp_path, capsys, name, ledgers):
    outside = tmp_path / "outside"
    outside.mkdir()
    code, err = _verify(_bundle(tmp_path / "b.tar.gz", _files([name], ledgers)), capsys)
    assert code == 1 and "Traceback" not in err, err
    assert f"report.json: locations.names: {name!r} is not a location name" in err, err
    assert list(outside.iterdir()) == []


def test_a_location_named_as_a_file_of_the_bundle_is_read_apart_from_it(tmp_path, capsys):
    code, err = _verify(_bundle(tmp_path / "b.tar.gz", _files(["report.json"], ["report.json"])), capsys)
    assert code == 1 and "Traceback" not in err, err  # its ledger is no database: said so, once it is opened
    assert "a ledger cannot be read:" in err and "report.json/ledger.db is not a ledger this agent can read" in err


def test_location_names_that_are_not_a_list_of_distinct_names_are_refused(tmp_path, capsys):
    for names, said in (("..", "must be a list of location names"), (["x", "x"], "'x' is named twice"),
                        ({"a": 1}, "must be a list of location names")):
        code, err = _verify(_bundle(tmp_path / "b.tar.gz", _files(names, ["x"])), capsys)
        assert code == 1 and f"report.json: locations.names: {said}" in err, (names, err)


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


@pytest.mark.parametrize("member, said", [
    (_info("sla-2026-03-evidence/extra.txt", tarfile.SYMTYPE, link="/etc/passwd"), "a symbolic link"),
    (_info("sla-2026-03-evidence/report.json", tarfile.SYMTYPE, link="/etc/passwd"), "a symbolic link"),
    (_info("sla-2026-03-evidence/ledger.db", tarfile.LNKTYPE, link="sla-2026-03-evidence/config.yaml"),
     "a hard link"),
    (_info("sla-2026-03-evidence/ledger.db", tarfile.CHRTYPE), "a device"),
    (_info("sla-2026-03-evidence/journal.jsonl", tarfile.FIFOTYPE), "a named pipe"),
    (_info("/tmp/sla-2026-03-evidence/README.txt", size=4), "an absolute path"),
    (_info("sla-2026-03-evidence/../README.txt", size=4), "a '..' in its path"),
    (_info("../../README.txt", size=4), "a '..' in its path"),
    (_info("other/config.yaml", size=4), "a second config.yaml"),
])
def test_a_member_that_is_not_a_plain_file_of_the_bundle_is_refused(tmp_path, capsys, member, said):
    for first in (False, True):
        path = _bundle(tmp_path / "b.tar.gz", _files(["x"], ["x"]), (member,), first)
        code, err = _verify(path, capsys)
        named = "'sla-2026-03-evidence/config.yaml'" if first and "second" in said else repr(member.name)
        assert code == 1 and f"{named} in the archive: {said}" in err and "Traceback" not in err, err


def _header_only(path: Path, members: list[tuple[str, int]]) -> Path:
    """A .tar.gz whose members' headers claim `size` bytes that never follow: a bound must refuse them on
    the header's word, before reading (or writing) any of it."""
    raw = b"".join(_info(name, size=size).tobuf(format=tarfile.PAX_FORMAT) for name, size in members)
    path.write_bytes(gzip.compress(raw))
    return path


@pytest.mark.parametrize("name, size, said", [
    ("b/report.json", 65 << 20, "68157440 bytes, more than the 67108864 bytes a report.json may hold"),
    ("b/config.yaml", 1 << 40, "1099511627776 bytes, more than the 67108864 bytes a config.yaml may hold"),
    ("b/ledger.db", 17 << 30, "the bundle would unpack to more than 17179869184 bytes"),
])
def test_a_member_larger_than_such_a_file_can_be_is_refused_on_its_header(tmp_path, capsys, name, size, said):
    code, err = _verify(_header_only(tmp_path / "big.tar.gz", [(name, size)]), capsys)
    assert code == 1 and f"{name!r} in the archive: {said}" in err and "Traceback" not in err, err


def test_a_report_that_is_not_json_is_a_finding(tmp_path, capsys):
    code, err = _verify(_bundle(tmp_path / "b.tar.gz", _files(["x"], ["x"], report_json=b"{not json")), capsys)
    assert code == 1 and "report.json: not a report" in err and "Traceback" not in err, err


def test_a_location_given_on_the_command_line_as_dot_dot_is_refused(tmp_path, capsys):
    """`--location ..=PATH` named the folder above the one the ledgers are gathered in."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(CONFIG)
    for name in ("..", "."):
        capsys.readouterr()
        code = main(["report", "--config", str(cfg), "--month", "2026-03", "--location", f"{name}={tmp_path}"])
        err = capsys.readouterr().err
        assert code == 1 and f"--location '{name}={tmp_path}': must be NAME=URL or NAME=PATH" in err, err
        assert "not '.' or '..'" in err


def test_a_config_that_is_not_one_is_a_finding(tmp_path, capsys):
    code, err = _verify(_bundle(tmp_path / "b.tar.gz", _files(["x"], ["x"], config_yaml=b"\xff\xfe targets: [")),
                        capsys)
    assert code == 1 and "config.yaml: not a config this agent reads" in err and "Traceback" not in err, err


def test_a_report_nested_deeper_than_a_parser_goes_is_a_finding(tmp_path, capsys):
    deep = b'{"month": "2026-03", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    code, err = _verify(_bundle(tmp_path / "b.tar.gz", _files(["x"], ["x"], report_json=deep)), capsys)
    assert code == 1 and "report.json: not a report" in err and "Traceback" not in err, err


def test_a_report_to_verify_nested_deeper_than_a_parser_goes_is_refused(tmp_path, capsys):
    (tmp_path / "cfg.yaml").write_bytes(CONFIG + f'agent: {{state_dir: "{tmp_path}"}}\n'.encode())
    (tmp_path / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    capsys.readouterr()
    code = main(["report", "--config", str(tmp_path / "cfg.yaml"), "--verify", str(tmp_path / "deep.json")])
    err = capsys.readouterr().err
    assert code != 0 and "cannot read" in err and "Traceback" not in err, err
