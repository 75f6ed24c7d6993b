"""Telemetry providers are installed only when something takes what they record."""

from opentelemetry import metrics, trace

from ipt_core.telemetry import setup_metrics, setup_tracing


def test_without_an_exporter_no_tracer_provider_is_installed() -> None:
    before = trace.get_tracer_provider()
    assert setup_tracing("ipt-test", otlp_endpoint=None) is None
    assert trace.get_tracer_provider() is before


def test_without_prometheus_no_meter_provider_is_installed() -> None:
    before = metrics.get_meter_provider()
    setup_metrics(prometheus=False)
    assert metrics.get_meter_provider() is before
