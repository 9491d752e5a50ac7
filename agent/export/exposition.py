"""Prometheus text exposition (format 0.0.4), byte-identical to prometheus_client.generate_latest, kept
prebuilt so that a render is mostly a join of bytes.

generate_latest collects every sample of every series at each scrape, builds a dict of labels for it
and formats it again, although almost none changed since the scrape before: at 100 targets that is
~7,500 lines, tens of milliseconds holding the GIL the event loop needs. Here the registry (Registry)
lists its collectors in exposition order and, for those that can, keeps their text (`parts`):

- a Family (the per-target series of export/metrics.py) keeps the text of each target's series and
  formats their values again only when they are new or the target's version moved (LiveMetrics moves
  it after each result); the agent's own few health series are Families without versions, their
  values formatted at each render into text kept;
- the SLA figures (collectors.SloCollector) are formatted once per evaluation, the target info once per
  configuration;
- the rest (the ticket feed's series and the like) is collected and formatted at each render, as
  prometheus_client would.

Values still live in prometheus_client's own metrics, so generate_latest(registry) gives the same text
(a test checks it after results, reloads, removals and evaluations).
"""
from __future__ import annotations

import threading
import time
from itertools import accumulate
from operator import attrgetter
from typing import Callable, Iterable, Mapping

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from prometheus_client.values import MutexValue

_LABELS: dict[tuple, str] = {}
# In a worker thread the render lets go of the GIL this often, for this long: the event loop's thread
# otherwise waits for it the interpreter's whole switch interval (5 ms) at every wake-up while a render
# runs, and the probes in flight measure those waits (median wake-up lag 5.2 ms without, 0.6 ms with).
PAUSE_EVERY = 0.001
PAUSE = 0.0001
_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
          "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


class Pace:
    """Lets go of the GIL every PAUSE_EVERY when called from a worker thread (the loop's own thread has
    nobody to let in)."""

    __slots__ = ("worker", "last")

    def __init__(self) -> None:
        self.worker = threading.current_thread() is not threading.main_thread()
        self.last = time.perf_counter()

    def __call__(self) -> None:
        if self.worker and time.perf_counter() - self.last >= PAUSE_EVERY:
            time.sleep(PAUSE)
            self.last = time.perf_counter()


Parts = Callable[[Pace], Iterable[bytes]]


class Registry(CollectorRegistry):
    """prometheus_client's registry, which also lists its collectors in the order collect() yields them
    (registration order) with, for those that keep one, their prebuilt text: a collector's own `parts`
    method, or what prebuild() gave for it."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self._parts: dict[Collector, Parts | None] = {}

    def register(self, collector: Collector) -> None:
        super().register(collector)
        with self._lock:
            self._parts[collector] = getattr(collector, "parts", None)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        with self._lock:
            del self._parts[collector]

    def prebuild(self, collector: Collector, parts: Parts) -> None:
        """`collector`'s text is what `parts` gives from now on (it must equal what collect() gives)."""
        with self._lock:
            if collector not in self._parts:
                raise KeyError(f"{collector} is not registered")
            self._parts[collector] = parts

    def sections(self) -> list[tuple[Collector, Parts | None]]:
        with self._lock:
            return list(self._parts.items())


def generate(registry: CollectorRegistry) -> bytes:
    """The text exposition of the registry: generate_latest's bytes."""
    pace = Pace()
    if not isinstance(registry, Registry):
        return text_of(registry.collect(), pace)
    out: list[bytes] = []
    for collector, parts in registry.sections():
        if parts is None:
            out.append(text_of(collector.collect(), pace))
        else:
            out.extend(parts(pace))
    return b"".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_text(items: tuple) -> str:
    return ("{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(items)) + "}") if items else ""


def _labels(items: tuple) -> str:
    """The text of a label set, cached: the series collected at each render keep theirs."""
    text = _LABELS.get(items)
    if text is None:
        if len(_LABELS) > 200_000:  # label churn (targets renamed many times): start again
            _LABELS.clear()
        text = _LABELS[items] = _label_text(items)
    return text


def _line(name: str, labels: tuple, value: float, timestamp: float | None) -> str:
    line = f"{name}{_labels(labels)} {_number(value)}"
    if timestamp is not None:
        line += f" {int(float(timestamp) * 1000):d}"
    return line + "\n"


def _number(value: float) -> str:
    """floatToGoString's text: repr's for every finite float under a million (Go writes larger ones with
    an exponent sooner than Python does), at a third of the cost."""
    value = float(value)
    return repr(value) if -1e6 < value < 1e6 else floatToGoString(value)


def _head(name: str, mtype: str, documentation: str) -> str:
    if mtype == "counter":
        name += "_total"
    elif mtype == "info":
        name += "_info"
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {_TYPES.get(mtype, mtype)}\n"


def text_of(metrics: Iterable, pace: Pace) -> bytes:
    """The text of collected metrics (prometheus_client Metric objects), as generate_latest writes it."""
    out: list[str] = []
    append = out.append
    for metric in metrics:
        append(_head(metric.name, metric.type, metric.documentation))
        created = []
        for i, s in enumerate(metric.samples):
            if not i % 64:
                pace()
            line = _line(s.name, tuple(s.labels.items()), s.value, s.timestamp)
            if s.name == metric.name + "_created" or s.name.endswith(("_gsum", "_gcount")) and metric.type == "gaugehistogram":
                created.append(line)
            else:
                append(line)
        if created:
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            append(f"# HELP {metric.name}_created {doc}\n# TYPE {metric.name}_created gauge\n")
            out.extend(created)
    return "".join(out).encode("utf-8")


class Family:
    """The prebuilt text of a prometheus_client metric (a counter, gauge or histogram) whose series each
    belong to one key (the value of its `key` label, a target). The series are kept in runs (`_Run`):
    consecutive series of one key, as bind() makes a target's. A run is formatted again only when it is
    new (a series came, went, or was removed and made again) or when its key's version in `versions`
    moved since the render before, and then only its values, into the text around them kept from the
    run's first render. A render where no series came or went and no version moved costs a few copies
    and comparisons made in C, not a Python step per series. Without `versions` (a metric of the agent's
    own, changing all the time) every series is formatted at each render, still without the
    collection's Metric and Sample objects.

    Whoever changes a series' value must move its key's version AFTER the change, to a value the key
    never had: a render reads the versions before the values, so a change it half saw moves the version
    again and the next render formats the series anew. The series' order is the metric's own (the
    order its children were made in), as collect() gives it. It reads prometheus_client's children
    directly (`_metrics`, a value's `_value`, a histogram's `_buckets` and `_sum`), as the library's own
    collect() does; `_created` series must be off (metrics.py turns them off): generate_latest writes
    them elsewhere."""

    def __init__(self, metric: MetricWrapperBase, versions: Mapping[str, int] | None, key: str = "target") -> None:
        if metric._type not in ("counter", "gauge", "histogram"):
            raise TypeError(f"{metric}: only counters, gauges and histograms are prebuilt")
        self.metric = metric
        self.versions = versions
        names = tuple(metric._labelnames)
        self._at = names.index(key) if versions is not None else None
        self._names = names
        self._head = _head(metric._name, metric._type, metric._documentation).encode()
        self._histogram = metric._type == "histogram"
        # a gauge may be set to -0.0, which the number cache cannot tell from 0.0 (_Texts)
        self._texts_of = _texts if metric._type != "gauge" else _plain_texts
        # as of the render before: the children in order (compared by identity: a child removed and
        # made again is another object), their runs and texts, where each key's runs are, the versions
        # read; the text around each child's values
        self._children: list[MetricWrapperBase] = []
        self._runs: list[_Run] = []
        self._texts: list[bytes] = []
        self._where: dict[str, list[int]] = {}
        self._seen: dict[str, int] | None = {} if versions is not None else None
        self._templates: dict[MetricWrapperBase, bytes] = {}
        self._lock = threading.Lock()

    def parts(self, pace: Pace) -> list[bytes]:
        m = self.metric
        if m._labelnames:
            with m._lock:
                children = list(m._metrics.values())
        else:
            children = [m]
        seen = dict(self.versions) if self.versions is not None else None  # before any value is read
        with self._lock:  # one render at a time keeps the cache consistent
            runs, texts, before, texts_of = self._runs, self._texts, self._seen, self._texts_of
            try:
                if children != self._children:
                    self._rebuild(children, seen, pace)
                elif seen is None:
                    for i, run in enumerate(runs):
                        texts[i] = run.template % tuple(texts_of(run.numbers()))
                elif seen != before:
                    moved = [key for key, version in seen.items() if before.get(key) != version]
                    moved += before.keys() - seen.keys()
                    where = self._where
                    for key in moved:
                        pace()
                        for i in where.get(key, ()):
                            run = runs[i]
                            texts[i] = run.template % tuple(texts_of(run.numbers()))
            except TypeError as e:  # more or fewer values than the text has places for
                raise RuntimeError(f"{m}: a series changed shape (_created series turned on?)") from e
            self._seen = seen
            return [self._head, *self._texts]

    def _rebuild(self, children: list[MetricWrapperBase], seen: dict[str, int] | None, pace: Pace) -> None:
        """Every run again, keeping the text of those that stayed whole and whose key's version did not move."""
        kept = {run.children: text for run, text in zip(self._runs, self._texts)} if seen is not None else {}
        before = self._seen or {}
        templates = {child: self._templates.get(child) or self._template(child) for child in children}
        at = self._at
        runs, texts, where = [], [], {}
        start = 0
        for i in range(1, len(children) + 1):
            key = children[start]._labelvalues[at] if at is not None else None
            if i < len(children) and at is not None and children[i]._labelvalues[at] == key:
                continue
            kids = tuple(children[start:i])
            # a gauge of the agent's own may be given a set_function any time
            run = _Run(kids, b"".join(templates[k] for k in kids), self._histogram,
                       seen is not None or self.metric._type != "gauge")
            text = kept.get(kids) if seen is not None and seen.get(key) == before.get(key) else None
            if text is None:
                pace()
                text = run.template % tuple(self._texts_of(run.numbers()))
            where.setdefault(key, []).append(len(runs))
            runs.append(run)
            texts.append(text)
            start = i
        self._children, self._runs, self._texts, self._where, self._templates = children, runs, texts, where, templates

    def _template(self, child: MetricWrapperBase) -> bytes:
        """The text of the series' lines with %s for each value: a series' samples never change names or
        labels, only values."""
        series = tuple(zip(self._names, child._labelvalues))
        name = self.metric._name
        lines = [f"{name}{suffix}{_label_text(series + tuple(labels.items()))} ".replace("%", "%%") + "%s\n"
                 for suffix, labels, *_ in child._samples()]
        return "".join(lines).encode("utf-8")


class _Run:
    """Consecutive series of one key in a Family, formatted together with one template (bytes: their
    %-formatting is several times faster than a str's)."""

    __slots__ = ("children", "template", "numbers")

    def __init__(self, children: tuple, template: bytes, histogram: bool, direct: bool) -> None:
        self.children, self.template = children, template
        # the values are read directly when they are prometheus_client's own plain floats (not in
        # multiprocess mode) and no gauge's set_function stands in for them
        direct = direct and all(type(v) is MutexValue and "_child_samples" not in c.__dict__ for c in children
                                for v in ((*c._buckets, c._sum) if histogram else (c._value,)))
        self.numbers = (_histogram_values if histogram else _values)(children, direct)


_VALUE = attrgetter("_value")
_VALUES = attrgetter("_value._value")


def _values(children: tuple, direct: bool) -> Callable[[], list[float]]:
    if direct:
        return lambda: list(map(_VALUES, children))
    return lambda: [s[2] for c in children for s in c._child_samples()]


def _histogram_values(children: tuple, direct: bool) -> Callable[[], list[float]]:
    """The values of the histograms' _child_samples, in its order (cumulative buckets, count, sum),
    without formatting every bucket's `le` again as it does."""
    if not direct:
        return lambda: [s[2] for c in children for s in c._child_samples()]
    # a histogram with a negative bucket has no _sum series
    parts = [(c._buckets, c._sum if c._upper_bounds[0] >= 0 else None) for c in children]

    def numbers() -> list[float]:
        out: list[float] = []
        extend, append = out.extend, out.append
        for buckets, total in parts:
            extend(accumulate(map(_VALUE, buckets)))
            append(out[-1])
            if total is not None:
                append(total._value)
        return out
    return numbers


class _Texts(dict):
    """The text of each number met lately: most repeat (a histogram's count is its last bucket, the
    buckets above the slowest probe all hold the count, a target's idle counters stay where they are).
    NaN is not kept (never equal to itself). -0.0 would be found as 0.0, which is written otherwise:
    only counters and histograms use it, and neither can hold -0.0 (inc() refuses a negative amount and
    0.0 + -0.0 is 0.0); a gauge may be set to it."""

    def __missing__(self, value: float) -> bytes:
        text = _number(value).encode()
        if value == value:
            if len(self) >= NUMBERS_KEPT:
                self.clear()
            self[value] = text
        return text


NUMBERS_KEPT = 4096  # about 0.4 MB
_TEXTS = _Texts()


def _texts(numbers: list[float]) -> map:
    return map(_TEXTS.__getitem__, numbers)


def _plain_texts(numbers: list[float]) -> list[bytes]:
    return [_number(n).encode() for n in numbers]
