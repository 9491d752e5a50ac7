"""Prometheus text exposition (format 0.0.4), byte-identical to prometheus_client.generate_latest, kept
prebuilt so that a render is mostly a join of bytes.

generate_latest collects every sample of every series at each scrape, builds a dict of labels for it
and formats it again, although almost none changed since the scrape before: at 100 targets that is
~7,500 lines, tens of milliseconds holding the GIL the event loop needs. Here the registry (Registry)
lists its collectors in exposition order and, for those that can, keeps their text (`parts`):

- a Family (the per-target series of export/metrics.py) keeps the text of each series and formats it
  again only when it is new or its target's version moved (LiveMetrics bumps it after each result);
- the SLA figures (collectors.SloCollector) are formatted once per evaluation, the target info once per
  configuration;
- the rest (the agent's own few health series, the ticket feed's) is collected and formatted at each
  render, as prometheus_client would.

Values still live in prometheus_client's own metrics, so generate_latest(registry) gives the same text
(a test checks it after results, reloads, removals and evaluations).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Mapping

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

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
    """The prebuilt text of a labelled prometheus_client metric (a counter, gauge or histogram) whose
    series each belong to one key (the value of its `key` label, a target): a series is formatted again
    only when it is new (or was removed and made again) or when its key's version in `versions` moved
    since the render before, and then only its values: the text around them is kept (`_layout`). A
    render where no series came or went and no version moved costs a few copies and comparisons made
    in C, not a Python step per series.

    Whoever changes a series' value must move its key's version AFTER the change, to a value the key
    never had: a render reads the versions before the values, so a change it half saw moves the version
    again and the next render formats the series anew. The series' order is the metric's own (the
    order its children were made in), as collect() gives it. It reads prometheus_client's children
    directly (`_metrics`, `_samples`, a histogram's `_buckets` and `_sum`), as the library's own
    collect() does; `_created` series must be off (metrics.py turns them off): generate_latest writes
    them elsewhere."""

    def __init__(self, metric: MetricWrapperBase, versions: Mapping[str, int], key: str = "target") -> None:
        if metric._type not in ("counter", "gauge", "histogram"):
            raise TypeError(f"{metric}: only counters, gauges and histograms are prebuilt")
        self.metric = metric
        self.versions = versions
        names = tuple(metric._labelnames)
        self._at = names.index(key)
        self._names = names
        self._head = _head(metric._name, metric._type, metric._documentation).encode()
        self._read = _histogram_values if metric._type == "histogram" else _values
        # as of the render before: the children (label values, child) in order, their texts and layouts,
        # where each key's series are, the versions read
        self._children: list[tuple[tuple, MetricWrapperBase]] = []
        self._texts: list[bytes] = []
        self._layouts: list[list[str]] = []
        self._where: dict[str, list[int]] = {}
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def parts(self, pace: Pace) -> list[bytes]:
        m = self.metric
        with m._lock:
            children = list(m._metrics.items())
        seen = dict(self.versions)  # before any value is read
        with self._lock:  # one render at a time keeps the cache consistent
            if children != self._children:  # a series came or went: compared by identity
                self._rebuild(children, seen, pace)
            else:
                moved = {key for key, _ in seen.items() - self._seen.items()} | (self._seen.keys() - seen.keys())
                for key in moved:
                    for i in self._where.get(key, ()):
                        pace()
                        self._texts[i] = self._format(children[i][1], self._layouts[i])
            self._seen = seen
            return [self._head, *self._texts]

    def _rebuild(self, children: list[tuple[tuple, MetricWrapperBase]], seen: dict[str, int], pace: Pace) -> None:
        """Every series again, keeping the text of those that stayed and whose key's version did not move."""
        before = {values: (child, text, layout) for (values, child), text, layout
                  in zip(self._children, self._texts, self._layouts)}
        texts, layouts, where = [], [], {}
        for i, (values, child) in enumerate(children):
            key = values[self._at]
            kept = before.get(values)
            if kept is not None and kept[0] is child:
                layout, text = kept[2], kept[1] if seen.get(key) == self._seen.get(key) else None
            else:
                layout, text = self._layout(values, child), None
            if text is None:
                pace()
                text = self._format(child, layout)
            texts.append(text)
            layouts.append(layout)
            where.setdefault(key, []).append(i)
        self._children, self._texts, self._layouts, self._where = children, texts, layouts, where

    def _layout(self, values: tuple, child: MetricWrapperBase) -> list[str]:
        """What comes before each value of the series' lines: a series' samples never change names or
        labels, only values."""
        series = tuple(zip(self._names, values))
        name = self.metric._name
        return [f"{name}{suffix}{_label_text(series + tuple(labels.items()))} "
                for suffix, labels, *_ in child._samples()]

    def _format(self, child: MetricWrapperBase, layout: list[str]) -> bytes:
        numbers = self._read(child)
        if len(numbers) != len(layout):
            raise RuntimeError(f"{self.metric}: a series changed shape (_created series turned on?)")
        return "".join([f"{before}{_number(n)}\n" for before, n in zip(layout, numbers)]).encode("utf-8")


def _values(child: MetricWrapperBase) -> list[float]:
    return [s[2] for s in child._child_samples()]


def _histogram_values(child: MetricWrapperBase) -> list[float]:
    """The values of a histogram's _child_samples, in its order (cumulative buckets, count, sum), without
    formatting every bucket's `le` again as it does."""
    out, acc = [], 0.0
    for bucket in child._buckets:
        acc += bucket.get()
        out.append(acc)
    out.append(acc)
    if child._upper_bounds[0] >= 0:
        out.append(child._sum.get())
    return out
