"""The forger who holds the key (issue 21, acceptance 2): a ledger whose chain head was time-stamped by a
local RFC 3161 authority and pushed to a local webhook witness; one sealed minute row of the past is
rewritten, the whole chain rebuilt and everything signed again with the agent's own key. The chain walk
alone cannot tell; the stored tokens and the witness's copy of the checkpoint each name the contradiction."""
from __future__ import annotations

from agent.cli import main
from agent.config import load_config
from agent.report import checkpoint, signing
from agent.report.witnessed import make_for_agent
from agent.store import Store

from .conftest import FakeClock
from .servers import http_server
from .test_daemon import wait_for
from .test_witness import T0, Witness, _agent, _config, _probe_an_hour, _rebuild_chain
from .tsa import LocalTSA


def _verify(capsys, args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["evidence", "verify", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_a_chain_rebuilt_and_re_signed_by_the_key_holder_is_named_by_the_tokens_and_the_witness(tmp_path, capsys):
    private, _ = signing.keygen(tmp_path / "keys")
    tsa, wit, clock = LocalTSA(tmp_path / "tsa"), Witness(), FakeClock(wall=T0)
    async with tsa.serving() as tsa_url, http_server(wit.app) as wbase:
        cfg_path = _config(tmp_path, private, f'{{webhooks: ["{wbase}/witness"], every: 1h}}')
        cfg_path.write_text(cfg_path.read_text().replace(
            "witnesses:", f'timestamping: {{tsa: ["{tsa_url}"], ca_file: "{tsa.ca}"}}, witnesses:'))
        async with _agent(tmp_path, cfg_path, clock) as agent:
            await _probe_an_hour(agent, clock)
            assert [r.ok for r in await agent.stamping.stamp_now()] == [True]
            await clock.advance(3600)  # the witnesses' next push, after the hour was sealed
            await wait_for(lambda: wit.kept, "the witness's copy of the checkpoint")
    witnessed = tmp_path / "witness-copy.txt"
    witnessed.write_text(wit.kept[-1])
    ledger = ["--config", str(cfg_path), "--state-dir", str(tmp_path / "state")]
    code, out, err = _verify(capsys, ledger + ["--tsa-ca", str(tsa.ca), "--checkpoint", str(witnessed)])
    assert code == 0, err
    assert "existed by" in out and "checkpoints 1 checked" in out

    _rebuild_chain(tmp_path / "state" / "ledger.db")
    resigned = tmp_path / "resigned.txt"  # the forger's own checkpoint of the rebuilt chain, with the key
    resigned.write_text(make_for_agent(tmp_path / "state" / "ledger.db", str(private), "paris", T0 + 6 * 3600)[0])
    store = Store(tmp_path / "state", thresholds=load_config(cfg_path).contract.thresholds, readonly=True)
    try:
        problems, stats = store.verify()
    finally:
        store.close()
    assert problems == [] and stats["minute rows"] >= 1  # by itself, the rebuilt chain holds together
    assert checkpoint.signer(checkpoint.parse(resigned.read_text()), [signing.load_private(private).public_key()])

    code, out, err = _verify(capsys, ledger + ["--tsa-ca", str(tsa.ca)])
    assert code == 1 and "the chain was rewritten after that time" in err, err
    code, out, err = _verify(capsys, ledger + ["--checkpoint", str(witnessed)])
    assert code == 1 and f"checkpoint {witnessed}" in err and "the chain was rewritten at or before link" in err, err
