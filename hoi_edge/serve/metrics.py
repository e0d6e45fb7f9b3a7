"""``GET /metrics`` in Prometheus' text format: per stream its frames, drops, reconnects, fps and latency, per
network the time it took per frame, and the requests the API answered.

Counters that the streams keep anyway (frames, drops, reconnects, fps) are read at scrape time by a collector;
latencies are histograms observed per frame. Each app has a registry of its own, so several servers in one
process (the tests) never mix their numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.pipeline.stream import StreamResult
from hoi_edge.serve.streams import STATES, StreamWorker

#: seconds; from 5 ms (a small network on a GPU) to 10 s (a large model on a busy CPU)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


class _StreamCollector(Collector):
    def __init__(self, streams: Callable[[], Iterable[StreamWorker]]) -> None:
        self._streams = streams

    def collect(self) -> Iterable[Metric]:
        read = CounterMetricFamily("hoi_edge_stream_frames_read", "Frames read from the source", labels=["stream"])
        done = CounterMetricFamily("hoi_edge_stream_frames_processed", "Frames through the whole pipeline",
                                   labels=["stream"])
        dropped = CounterMetricFamily("hoi_edge_stream_frames_dropped",
                                      "Frames skipped because the pipeline was busy (newest frame kept)",
                                      labels=["stream"])
        reconnects = CounterMetricFamily("hoi_edge_stream_reconnects", "Times the source was reopened",
                                         labels=["stream"])
        fps = GaugeMetricFamily("hoi_edge_stream_fps", "Frames processed per second over the last 5 s",
                                labels=["stream"])
        state = GaugeMetricFamily("hoi_edge_stream_state", "1 for the stream's current state",
                                  labels=["stream", "state"])
        for w in self._streams():
            snap = w.snapshot()
            read.add_metric([w.id], snap["frames_read"])
            done.add_metric([w.id], snap["frames_processed"])
            dropped.add_metric([w.id], snap["dropped"])
            reconnects.add_metric([w.id], snap["reconnects"])
            fps.add_metric([w.id], snap["fps"])
            for s in STATES:
                state.add_metric([w.id, s], 1.0 if snap["state"] == s else 0.0)
        yield from (read, done, dropped, reconnects, fps, state)


class ServerMetrics:
    """The app's registry: ``observe_frame`` per stream frame, ``observe_request`` per inference request."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, streams: Callable[[], Iterable[StreamWorker]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StreamCollector(streams))
        self.frame_latency = Histogram("hoi_edge_stream_latency_seconds",
                                       "Frame latency, preprocessing start to final scores", ["stream"],
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.unit_time = Histogram("hoi_edge_unit_seconds",
                                   "Per network and frame: submission to result (waiting for it included)",
                                   ["stream", "unit"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.request_latency = Histogram("hoi_edge_request_latency_seconds", "Inference requests, per endpoint",
                                         ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rebakes = Counter("hoi_edge_vocabulary_changes", "Vocabularies baked and swapped in at run time",
                               registry=self.registry)

    def observe_frame(self, worker: StreamWorker, result: StreamResult) -> None:
        timings = result.prediction.timings
        self.frame_latency.labels(worker.id).observe(timings["latency"])
        for unit in EXPORT_UNITS:
            if unit in timings:
                self.unit_time.labels(worker.id, unit).observe(timings[unit])

    def forget(self, worker: StreamWorker) -> None:
        """A removed stream's series go with it."""
        for metric, labels in [(self.frame_latency, (worker.id,))] + [(self.unit_time, (worker.id, u))
                                                                      for u in EXPORT_UNITS]:
            try:
                metric.remove(*labels)
            except KeyError:
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)
