"""The probe of a multi-step transaction: the steps one after the other on one session (cookies kept
within a run, cleared between runs), each under the target's timeout. The measured step's timings make
the result; the first failing step decides the outcome and is named in the error."""
from __future__ import annotations

import aiohttp

from ...schema import ENV_REF
from ..base import ProbeResult
from ..offloop import inline
from .checks import Answer
from .oauth2 import TokenUnavailable
from .probe import Attempt, HttpProbe, Run
from .spec import HttpOptions
from .steps import Step, TransactionOptions, extracted, header_names, secret_names


class TransactionProbe(HttpProbe):
    o: TransactionOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._secret_vars = secret_names(self.o.steps)
        self._header_vars = header_names(self.o.steps)

    def private_headers(self, o: HttpOptions) -> frozenset[str]:
        """The target's and the step's, and a step's header that carries a secret variable."""
        carrying = {k.lower() for k, v in o.headers if set(ENV_REF.findall(v)) & self._secret_vars}
        return self.o.private_headers | o.private_headers | carrying

    def _uses_https(self) -> bool:
        return any(s.request.url.startswith("https:") for s in self.o.steps)

    def _cookie_jar(self) -> aiohttp.abc.AbstractCookieJar:
        return aiohttp.CookieJar(unsafe=True)  # unsafe: cookies of IP-address hosts are kept too

    async def run(self) -> ProbeResult:
        if self._session is None:
            self._session = self._make_session()
        self._session.cookie_jar.clear()
        run, values = Run(), {}
        measured: Attempt | None = None
        n = len(self.o.steps)
        for i, step in enumerate(self.o.steps):
            label = f"step {i + 1}/{n} {step.name!r}"
            url, body, headers = step.resolve(values)
            try:
                a = await self.authorized(step.request, url, body, headers, run, sample=step.measure)
            except TokenUnavailable as exc:
                return self.no_token(step.request.auth, exc, run, prefix=f"{label}: ")
            if step.measure:
                measured = a
            if not a.kind:
                await self._extract(step, a, values, run)
            if a.kind:
                return self._result(measured or a, run, fail=a, label=label, counted=measured is not None)
        assert measured is not None  # noqa: S101 - read_steps marks one step measured
        return self._result(measured, run)

    async def _extract(self, step: Step, a: Attempt, values: dict[str, str], run: Run) -> None:
        """The step's variables into `values`; a value it cannot extract fails the step."""
        answer = Answer(a.status or 0, a.body)
        searches = sum(e.source == "regex" for e in step.extract)
        found, problem = await self.off_loop.run(inline(len(a.body), searches), extracted, step.extract, answer,
                                                 a.headers, self._header_vars)
        run.secrets.extend(v for k, v in found.items() if k in self._secret_vars and v)  # before anything is captured
        if problem:
            a.kind, a.error, a.failed = "assertion", problem, (problem,)
            if a.rec.capture and a.detail is None:
                a.detail = self.captured(a)
            return
        values.update(found)
