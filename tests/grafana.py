"""Read the committed Grafana dashboards and run their queries as Grafana would."""

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).parent.parent / "grafana" / "dashboards"


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return board.get("templating", {}).get("list", [])


@dataclass(frozen=True)
class Answer:
    error: str | None
    series: list[dict[str, Any]]


class Prometheus:
    """The HTTP API calls Grafana's Prometheus datasource makes."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, params: dict[str, str]) -> Answer:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            with exc:
                body = json.load(exc)
        if body["status"] != "success":
            return Answer(f"{body.get('errorType')}: {body.get('error')}", [])
        data = body["data"]
        return Answer(None, data["result"] if isinstance(data, dict) else data)

    def query(self, expr: str, *, instant: bool, now: float) -> Answer:
        if instant:
            return self._get("/api/v1/query", {"query": expr, "time": str(now)})
        return self._get("/api/v1/query_range", {
            "query": expr, "start": str(now - 120), "end": str(now), "step": "5"})

    def variable_values(self, variable: dict[str, Any], now: float) -> list[str]:
        """Values of a query variable: label_values() and query_result() as Grafana runs
        them, then its regex (named groups `value` and `text`, JavaScript syntax)."""
        query = variable["query"]["query"] if isinstance(variable["query"], dict) \
            else variable["query"]
        if m := re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query):
            answer = self._get(f"/api/v1/label/{m[2]}/values", {"match[]": m[1]})
            texts = [str(v) for v in answer.series]
        elif m := re.fullmatch(r"query_result\((.+)\)", query):
            answer = self.query(m[1], instant=True, now=now)
            texts = [_as_query_result(s) for s in answer.series]
        else:
            raise AssertionError(f"unsupported variable query {query!r}")
        assert answer.error is None, f"variable {variable['name']}: {answer.error}"
        if not variable.get("regex"):
            return sorted(texts)
        pattern = re.compile(variable["regex"].strip("/").replace("(?<", "(?P<"))
        values = []
        for text in texts:
            if m := pattern.search(text):
                values.append(m["value"] if "value" in pattern.groupindex else m[1])
        return sorted(values)


def _as_query_result(series: dict[str, Any]) -> str:
    """A result line the way Grafana's query_result() prints it: labels in API order."""
    metric = dict(series["metric"])
    name = metric.pop("__name__", "")
    labels = ", ".join(f'{k}="{v}"' for k, v in metric.items())
    return f"{name}{{{labels}}} {series['value'][1]} {series['value'][0]}"


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's variable interpolation for the variables our dashboards use."""
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    leftover = re.search(r"\$\{?\w+", expr)
    assert leftover is None, f"unknown variable {leftover[0]} in {expr}"
    return expr
