"""The exporter's own exposition of plain gauges equals prometheus_client's, byte for
byte, and leaves every other family to it."""

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.exposition import text_format


class Families:
    def __init__(self, *metrics: Metric) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield from self.metrics


def same(*metrics: Metric) -> None:
    assert text_format(Families(*metrics)) == generate_latest(Families(*metrics))


def gauge(name: str = "fleet_x_ratio", doc: str = "A ratio.",
          labels: tuple[str, ...] = ("vessel", "device")) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5, 0.1 + 0.2, 1e-9, 123456789.0, 1e22,
                                   float("inf"), float("-inf"), float("nan"), 7, 2**60])
def test_values_are_written_as_prometheus_client_writes_them(value: float) -> None:
    g = gauge()
    g.add_metric(["v1", "10.0.0.1"], value)
    same(g)


def test_label_values_are_escaped_and_labels_sorted() -> None:
    g = gauge(labels=("z", "a", "m"))
    g.add_metric(['quote " here', "back\\slash", "new\nline"], 1)
    g.add_metric(["", "plain", "ünïcode"], 2)
    same(g)


def test_help_is_escaped_and_a_family_without_labels_or_samples_is_written() -> None:
    g = gauge(doc="Line one\nback\\slash", labels=())
    g.add_metric([], 3)
    same(g, gauge("fleet_empty", "Nothing yet."))


def test_other_families_are_left_to_prometheus_client() -> None:
    counter = CounterMetricFamily("fleet_runs", "Runs.", labels=["result"])
    counter.add_metric(["ok"], 3)
    stamped = gauge("fleet_stamped")
    stamped.add_metric(["v", "d"], 1, timestamp=1_800_000_000.5)
    odd = gauge("fleet_odd", labels=("bad:label",))
    odd.add_metric(["x"], 1)
    plain = gauge()
    plain.add_metric(["v", "d"], 0.5)
    same(counter, stamped, odd, plain)


@given(st.lists(st.tuples(st.text(max_size=12), st.floats(allow_nan=False)), max_size=8))
def test_any_label_value_and_number(rows: list[tuple[str, float]]) -> None:
    g = gauge(labels=("device",))
    for text, value in rows:
        g.add_metric([text], value)
    same(g)
