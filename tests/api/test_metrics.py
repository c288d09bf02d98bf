"""The Metrics class: what it renders, parsed back with prometheus_client's own parser, so each test
reads the numbers a Prometheus server would scrape."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from segserve.api.metrics import Metrics


def _families(metrics: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}


def _value(metrics: Metrics, sample: str, **labels: str) -> float:
    """The one sample called `sample` with exactly these labels."""
    found = [s.value for f in _families(metrics).values() for s in f.samples if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, found)
    return found[0]


def test_the_rendered_text_is_prometheus_text_format():
    families = _families(Metrics())
    expected = {
        "segserve_requests": "counter",
        "segserve_request_seconds": "histogram",
        "segserve_queue_depth": "gauge",
        "segserve_inference_running": "gauge",
        "segserve_inference_seconds": "histogram",
    }
    assert {name: families[name].type for name in expected if name in families} == expected
    assert all(families[name].documentation for name in expected)


def test_requests_are_counted_per_method_route_status_and_code():
    m = Metrics()
    ok = m.requests.labels("POST", "/v1/images/segmentation", "200", "")
    ok.inc()
    ok.inc()
    m.requests.labels("POST", "/v1/images/segmentation", "422", "invalid_image").inc()
    path = "/v1/images/segmentation"
    assert _value(m, "segserve_requests_total", method="POST", route=path, status="200", code="") == 2.0
    assert _value(m, "segserve_requests_total", method="POST", route=path, status="422", code="invalid_image") == 1.0


@pytest.mark.parametrize("histogram", ["latency", "inference"])
def test_latency_histograms_bucket_each_observation(histogram):
    m = Metrics()
    if histogram == "latency":
        observe, name, labels = m.latency.labels("/healthz").observe, "segserve_request_seconds", {"route": "/healthz"}
    else:
        observe, name, labels = m.inference.observe, "segserve_inference_seconds", {}
    for seconds in (0.003, 0.03, 0.03, 7.0, 1000.0):
        observe(seconds)

    def bucket(le: str) -> float:
        return _value(m, f"{name}_bucket", le=le, **labels)

    assert bucket("0.01") == 1.0  # a cached answer
    assert bucket("0.025") == 1.0
    assert bucket("0.05") == 3.0  # cumulative: the two 30 ms ones join
    assert bucket("10.0") == 4.0
    assert bucket("300.0") == 4.0  # the largest finite bound
    assert bucket("+Inf") == 5.0  # 1000 s only here
    assert _value(m, f"{name}_count", **labels) == 5.0
    assert math.isclose(_value(m, f"{name}_sum", **labels), 1007.063)


def test_queue_depth_and_running_gauges_report_the_last_value_set():
    m = Metrics()
    m.queue_depth.set(5)
    m.queue_depth.set(3)
    m.running.set(1)
    assert _value(m, "segserve_queue_depth") == 3.0
    assert _value(m, "segserve_inference_running") == 1.0


def test_engine_counters_are_exported_with_safe_names_and_read_at_each_render():
    stats = {"vision_passes": 3, "vision cache-hits": 2, "avg.ratio": 0.5, "compiled": True, "device": "cpu"}
    m = Metrics(get_engine_stats=lambda: stats)
    families = _families(m)
    assert _value(m, "segserve_engine_vision_passes_total") == 3.0
    assert _value(m, "segserve_engine_vision_cache_hits_total") == 2.0  # space and dash -> underscores
    assert _value(m, "segserve_engine_avg_ratio_total") == 0.5  # floats too
    assert families["segserve_engine_vision_passes"].type == "counter"
    assert not [name for name in families if "compiled" in name or "device" in name]  # bools, strings: skipped
    stats["vision_passes"] = 4  # the collector asks the engine at each scrape
    assert _value(m, "segserve_engine_vision_passes_total") == 4.0


@pytest.mark.parametrize(
    "get_stats",
    [
        lambda: None,  # a segmenter with no stats (or none loaded yet)
        lambda: {},  # stats with nothing in them
    ],
)
def test_no_engine_stats_means_no_engine_metrics(get_stats):
    assert not [name for name in _families(Metrics(get_engine_stats=get_stats)) if name.startswith("segserve_engine")]


def test_two_metrics_objects_count_apart():
    # One registry each: several apps in one process (the tests) neither collide nor share counts.
    a, b = Metrics(), Metrics()
    a.requests.labels("GET", "/healthz", "200", "").inc()
    assert _value(a, "segserve_requests_total", method="GET", route="/healthz", status="200", code="") == 1.0
    assert not [s for f in _families(b).values() for s in f.samples if s.name == "segserve_requests_total"]
