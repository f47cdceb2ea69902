"""The query design before the SLA ledger, for comparison only: every window counted by
the vessel's InfluxDB in each request.

build_statements as it was at commit 5ab34b0 (``git show 5ab34b0:exporter/influxql.py``),
unchanged but for this docstring and the imports: its helpers Statement and _ident are
still the exporter's own, _regex is copied as it was then; request_form is how that
commit's backend encoded them.
"""

from collections.abc import Sequence
from urllib.parse import urlencode

from exporter.config import InfluxConfig, VesselConfig, Window
from exporter.influxql import Statement, _ident


def _regex(values: Sequence[str]) -> str:
    """An anchored InfluxQL regex matching exactly `values`; shorter than an OR chain."""

    def escape(value: str) -> str:
        # RE2 reads a backslash before ASCII punctuation as that character; "/" ends the literal.
        return "".join("\\" + c if c.isascii() and not c.isalnum() else c for c in value)

    return "/^(" + "|".join(escape(v) for v in values) + ")$/"


def build_statements(
    vessel: VesselConfig, windows: Sequence[Window], lookback: float
) -> list[Statement]:
    influx: InfluxConfig = vessel.influx
    tag = _ident(influx.device_tag)
    source = _ident(influx.measurement)
    only = f"{tag} =~ {_regex([d.address for d in vessel.devices])}"
    loss = '"percent_packet_loss"'
    reply = f"{loss} < 100"

    def since(seconds: float) -> str:
        # The upper bound keeps points from a clock that runs ahead out of every count.
        return f"time > now() - {int(seconds)}s AND time <= now() AND {only}"

    statements: list[Statement] = []
    for window in windows:
        statements.append(
            Statement(
                f"total:{window.label}",
                f'SELECT count("result_code") FROM {source} '
                f"WHERE {since(window.seconds)} GROUP BY {tag}",
            )
        )
        statements.append(
            Statement(
                f"up:{window.label}",
                f"SELECT count({loss}) FROM {source} "
                f"WHERE {reply} AND {since(window.seconds)} GROUP BY {tag}",
            )
        )
    # A ping error writes only result_code, so it is selected too: the newest row must
    # be the newest sample whatever fields it has.
    statements.append(
        Statement(
            "latest",
            f'SELECT "result_code", {loss}, "average_response_ms" FROM {source} '
            f"WHERE {since(lookback)} GROUP BY {tag} ORDER BY time DESC LIMIT 1",
        )
    )
    # Raw reads with LIMIT 1 stop at the first match; last() with a field condition reads
    # the whole lookback.
    statements.append(
        Statement(
            "last_reply",
            f"SELECT {loss} FROM {source} WHERE {reply} AND {since(lookback)} "
            f"GROUP BY {tag} ORDER BY time DESC LIMIT 1",
        )
    )
    statements.append(
        Statement(
            "first",
            f'SELECT first("result_code") FROM {source} WHERE {since(lookback)} GROUP BY {tag}',
        )
    )
    return statements


def request_form(vessel: VesselConfig, windows: Sequence[Window], lookback: float) -> bytes:
    """The /query form body the old backend sent (InfluxQLBackend._request at 5ab34b0)."""
    statements = build_statements(vessel, windows, lookback)
    return urlencode({
        "db": vessel.influx.database,
        "epoch": "s",
        "q": ";\n".join(s.text for s in statements),
    }).encode()
