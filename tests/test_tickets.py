"""Ticket response time in business hours, and the all-or-nothing import."""
from __future__ import annotations

import datetime as dt

import pytest

from agent.calendar.business import BusinessHours
from agent.cli import main
from agent.config import parse_config
from agent.config.model import Contract
from agent.tickets import TicketFileError, evaluate_ticket, parse_export, summarize
from agent.store import Store
from agent.tickets import Ticket

H = 3600.0
BASE = 'targets: [{name: a, service: web, url: "http://127.0.0.1:9/"}]\n'


def ts(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp()


FIXED = BusinessHours(Contract(timezone="+01:00"))
PARIS = BusinessHours(Contract(timezone="Europe/Paris"))


@pytest.mark.parametrize("opened, answered, hours", [
    ("2026-11-20T17:30:00+01:00", "2026-11-23T10:00:00+01:00", 2.0),  # Friday -> Monday (docs/contract.md, worked deadlines)
    ("2026-11-21T10:00:00+01:00", "2026-11-22T16:00:00+01:00", 0.0),  # all weekend
    ("2026-11-24T07:00:00+01:00", "2026-11-24T10:00:00+01:00", 1.0),  # opened before 09:00
    ("2026-11-24T19:00:00+01:00", "2026-11-25T09:30:00+01:00", 0.5),  # opened after 18:30
    ("2026-11-24T09:00:00+01:00", "2026-11-24T18:30:00+01:00", 9.5),  # one whole business day
    ("2026-11-24T12:00:00+01:00", "2026-11-24T12:00:00+01:00", 0.0),
    ("2026-04-30T17:00:00+01:00", "2026-05-04T10:00:00+01:00", 2.5),  # 1 May (Friday) is a holiday
    ("2026-05-13T18:30:00+01:00", "2026-05-15T09:30:00+01:00", 0.5),  # 14 May Ascension
    ("2026-05-22T18:30:00+01:00", "2026-05-26T10:00:00+01:00", 1.0),  # 25 May Whit Monday
    ("2026-07-13T18:30:00+01:00", "2026-07-15T10:00:00+01:00", 1.0),  # 14 July
    ("2026-11-10T18:30:00+01:00", "2026-11-12T09:15:00+01:00", 0.25),  # 11 November
    ("2026-12-24T18:30:00+01:00", "2026-12-28T09:00:00+01:00", 0.0),  # 25 December, then the weekend
])
def test_business_hours_table(opened, answered, hours):
    assert FIXED.seconds_between(ts(opened), ts(answered)) == pytest.approx(hours * H)


def test_dst_weeks_follow_local_time_with_europe_paris():
    # the week of the spring change: local 09:00-18:30 is 08:00-17:30 UTC before, 07:00-16:30 after
    before = PARIS.seconds_between(ts("2026-03-27T08:00:00+00:00"), ts("2026-03-27T17:30:00+00:00"))
    after = PARIS.seconds_between(ts("2026-03-30T07:00:00+00:00"), ts("2026-03-30T16:30:00+00:00"))
    assert before == after == 9.5 * H
    # a ticket opened Friday 18:30 local before the change, answered Monday 10:00 local: 1 h
    assert PARIS.seconds_between(ts("2026-03-27T18:30:00+01:00"), ts("2026-03-30T10:00:00+02:00")) == 1 * H
    # autumn: Friday 17:30 (+02:00) to Monday 09:30 (+01:00): 1.5 h
    assert PARIS.seconds_between(ts("2026-10-23T17:30:00+02:00"), ts("2026-10-26T09:30:00+01:00")) == 1.5 * H


def test_deadline_and_pending_vs_missed():
    p1 = 8 * H
    opened = ts("2026-11-20T17:30:00+01:00")  # Friday 17:30
    deadline = FIXED.deadline(opened, p1)
    assert deadline == ts("2026-11-23T16:00:00+01:00")  # 1 h Friday + 7 h Monday
    assert FIXED.seconds_between(opened, deadline) == p1
    t = Ticket("x", "P1", opened)
    assert evaluate_ticket(t, FIXED, p1, deadline - 1).state == "pending"
    assert evaluate_ticket(t, FIXED, p1, deadline + 60).state == "missed"
    answered = Ticket("y", "P1", opened, responded_at=deadline)
    assert evaluate_ticket(answered, FIXED, p1, deadline + 1e6).state == "met"  # exactly 8 h is in time


def test_extra_closed_days_from_config():
    cfg = parse_config('contract: {business_hours: {closed_days: [2026-11-23]}}\n' + BASE)
    bh = BusinessHours(cfg.contract)
    assert bh.seconds_between(ts("2026-11-20T17:30:00+01:00"), ts("2026-11-24T10:00:00+01:00")) == 2 * H


CSV_OK = """id,priority,opened_at,responded_at,workaround_at,resolved_at
A-1,P1,2026-11-20T17:30:00+01:00,2026-11-23T10:00:00+01:00,,
A-2,P2,2026-11-24T10:00:00Z,,,
A-3,p3,2026-11-24T10:00:00,2026-11-24T11:00:00,,
"""


def test_parse_csv_offsets_and_local_times():
    cfg = parse_config(BASE)
    tickets = parse_export(cfg, "x.csv", CSV_OK.encode())
    assert [t.id for t in tickets] == ["A-1", "A-2", "A-3"]
    assert tickets[1].opened_at == ts("2026-11-24T10:00:00+00:00")
    assert tickets[2].opened_at == ts("2026-11-24T10:00:00+01:00")  # no offset: contract time zone
    assert tickets[2].priority == "P3"


def test_bad_file_lists_every_bad_line_and_imports_nothing(tmp_path, capsys):
    bad = ("id,priority,opened_at,responded_at\n"
           "B-1,P1,2026-11-20T17:30:00+01:00,2026-11-20T17:00:00+01:00\n"  # answered before it was opened
           "B-2,P9,2026-11-20T17:30:00+01:00,\n"
           "B-3,P2,yesterday,\n"
           ",P2,2026-11-20T17:30:00+01:00,\n"
           "B-5,P2,2026-11-20T17:30:00+01:00,\n"
           "B-5,P2,2026-11-20T17:30:00+01:00,\n")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(BASE)
    export = tmp_path / "export.csv"
    export.write_text(bad)
    state = tmp_path / "state"
    assert main(["tickets", "import", "--config", str(cfg_file), "--state-dir", str(state), str(export)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[:5] == [
        f"{export}:2: responded_at: 2026-11-20T17:00:00+01:00 is before the ticket was opened (2026-11-20T17:30:00+01:00)",
        f"{export}:3: priority: must be P1, P2 or P3, got 'P9'",
        f"{export}:4: opened_at: must be an ISO 8601 date-time such as 2026-11-24T10:30:00+01:00, got 'yesterday'",
        f"{export}:5: id: is required",
        f"{export}:7: id: ticket 'B-5' already appears at line 6",
    ]
    assert "rejected, nothing imported" in err[-1]
    assert not (state / "ledger.db").exists() or Store(state, thresholds=(0.5, 1.0)).tickets() == []


def test_import_is_idempotent_and_updates(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(BASE)
    export = tmp_path / "export.csv"
    export.write_text(CSV_OK)
    args = ["tickets", "import", "--config", str(cfg_file), "--state-dir", str(tmp_path / "s"), str(export)]
    assert main(args) == 0
    assert "3 tickets added, 0 updated, 0 unchanged" in capsys.readouterr().out
    export.write_text(CSV_OK.replace("A-2,P2,2026-11-24T10:00:00Z,,,", "A-2,P2,2026-11-24T10:00:00Z,"
                                     "2026-11-24T11:00:00Z,,"))
    assert main(args) == 0
    assert "0 tickets added, 1 updated, 2 unchanged" in capsys.readouterr().out
    store = Store(tmp_path / "s", thresholds=(0.5, 1.0))
    assert len(store.tickets()) == 3
    assert next(t for t in store.tickets() if t.id == "A-2").responded_at == ts("2026-11-24T11:00:00+00:00")
    store.close()


def test_json_export_with_column_mapping():
    cfg = parse_config('contract: {tickets: {columns: {id: ref, priority: prio, opened_at: created, '
                       'responded_at: first_reply}}}\n' + BASE)
    data = b'[\n {"ref": 17, "prio": "P1", "created": "2026-11-24T10:00:00+01:00", "first_reply": null},\n' \
           b' {"ref": "18", "prio": "P2", "created": "2026-11-24T10:00:00+01:00",\n  "first_reply": "later"}\n]'
    with pytest.raises(TicketFileError) as err:
        parse_export(cfg, "e.json", data)
    assert err.value.problems == ["e.json:3: first_reply: must be an ISO 8601 date-time such as "
                                  "2026-11-24T10:30:00+01:00, got 'later'"]
    ok = parse_export(cfg, "e.json", data.replace(b'"later"', b'"2026-11-24T10:20:00+01:00"'))
    assert [(t.id, t.responded_at is None) for t in ok] == [("17", True), ("18", False)]


def test_summary_ratio_and_objective():
    cfg = parse_config(BASE)
    opened = ts("2026-11-24T09:00:00+01:00")
    tickets = [Ticket(f"t{i}", "P1", opened, responded_at=opened + (1 if i < 19 else 9) * H) for i in range(20)]
    s = summarize(tickets, cfg, opened + 30 * 86400)
    assert (s["P1"]["met"], s["P1"]["missed"], s["P1"]["ratio"]) == (19, 1, 0.95)  # 95 %: exactly met


def test_tickets_sealed_one_by_one_before_are_carried_into_the_seal_of_them_all(tmp_path):
    """A ledger of schema 4 sealed each ticket under its own key. Upgraded, each ticket keeps the hash it
    was sealed with: one edited before the upgrade is still named after the next import seals them all."""
    import sqlite3

    from agent.store import chain
    from agent.store.records import ticket_fields
    from agent.store.schema import MIGRATIONS, tx
    opened = ts("2026-11-24T10:00:00+00:00")
    old = [Ticket("A-1", "P1", opened), Ticket("A-2", "P2", opened, opened + 60)]
    conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    with tx(conn):  # the tables and the seals as schema 4 wrote them
        for stmt in (s for step in MIGRATIONS[:4] for s in step):
            conn.execute(stmt)
        conn.execute("INSERT INTO meta VALUES ('thresholds', '[0.5, 1.0]')")
        conn.executemany("INSERT INTO tickets (id, priority, opened_at, responded_at, workaround_at, resolved_at, "
                         "closed_at, imported_at, link) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 1)",
                         [ticket_fields(t) for t in old])
        chain.append_link(conn, [chain.Seal(f"t:{t.id}", None, chain.ticket_hash(ticket_fields(t))) for t in old],
                          opened)
        conn.execute("UPDATE tickets SET responded_at = responded_at + 3600 WHERE id = 'A-2'")  # edited
    conn.execute("PRAGMA user_version=4")
    conn.close()
    store = Store(tmp_path, thresholds=(0.5, 1.0))
    try:
        assert store.verify()[0] == ["ticket A-2 (sealed in link 1): differs from what was sealed"]
        assert store.upsert_tickets(old[:1] + [Ticket("A-3", "P3", opened)]) == (1, 0)
        assert store.verify()[0] == ["ticket A-2 (sealed in link 1): differs from what was sealed"]
        assert [r[0] for r in store.conn.execute("SELECT key FROM seals WHERE seq = 2")] == ["tickets"]
    finally:
        store.close()
