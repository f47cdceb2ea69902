"""Generate fleet-sla's Grafana dashboards into grafana/dashboards/.

    python grafana/generate.py          # write the JSON
    python grafana/generate.py --check  # exit 1 if the committed JSON differs

The JSON is committed so Grafana provisioning needs no build step; a test runs --check.
Every query takes its datasource from the `datasource` variable: no address is in here.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["fleet-sla"]
# Keeps the chosen datasource and time range. Tiles carry the vessel as a series label,
# table rows as their `vessel` column.
VESSEL_URL = ("/d/fleet-vessel/fleet-vessel?var-vessel={vessel}&${{datasource:queryparam}}"
              "&${{__url_time_range}}")
THREE_DAYS = 3 * 86400

# Colours with a meaning, used the same way on every dashboard.
RED, AMBER, GREEN, GREY = "red", "orange", "green", "#8e8e8e"
BLUE, PURPLE, DARK_RED, YELLOW = "blue", "purple", "dark-red", "yellow"

Panel = dict[str, Any]


def named(expr: str) -> str:
    """Add the vessel's display name (label `name`) to a result keyed by `vessel`; a vessel
    without fleet_vessel_info keeps its row, unnamed."""
    return (f"({expr}) * on (vessel) group_left (name) max by (vessel, name) (fleet_vessel_info)"
            f" or on (vessel) ({expr})")


def target(expr: str, ref: str = "A", legend: str = "", *, instant: bool = False,
           table: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": DS, "refId": ref, "expr": expr,
                           "legendFormat": legend or "__auto", "range": not instant,
                           "instant": instant}
    if table:
        out["format"] = "table"
    return out


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def fixed(color: str) -> dict[str, Any]:
    return {"mode": "fixed", "fixedColor": color}


def override(matcher: str, value: str, **props: Any) -> dict[str, Any]:
    return {"matcher": {"id": matcher, "options": value},
            "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()]}


def mapping(values: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"type": "value", "options": {
        k: {"text": text, "color": color, "index": i}
        for i, (k, (text, color)) in enumerate(values.items())}}]


def panel(kind: str, title: str, grid: tuple[int, int, int, int], targets: list[dict[str, Any]],
          *, description: str = "", unit: str = "", defaults: dict[str, Any] | None = None,
          overrides: list[dict[str, Any]] | None = None, options: dict[str, Any] | None = None,
          **extra: Any) -> Panel:
    x, y, w, h = grid
    field_defaults: dict[str, Any] = {**(defaults or {})}
    if unit:
        field_defaults["unit"] = unit
    return {
        "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {}, **extra,
    }


def stat(title: str, grid: tuple[int, int, int, int], targets: list[dict[str, Any]],
         *, text_mode: str = "value", color_mode: str = "background", **kw: Any) -> Panel:
    return panel("stat", title, grid, targets, options={
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode, "graphMode": "none", "textMode": text_mode,
        "justifyMode": "auto", "orientation": "auto", "wideLayout": True,
        "showPercentChange": False,
    }, **kw)


def timeseries(title: str, grid: tuple[int, int, int, int], targets: list[dict[str, Any]],
               *, stack: bool = False, **kw: Any) -> Panel:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 60,
              "showPoints": "never", "spanNulls": False,  # a gap is a gap, not a line
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults = {"custom": custom, **kw.pop("defaults", {})}
    return panel("timeseries", title, grid, targets, defaults=defaults, options={
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                   "calcs": ["lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }, **kw)


def table(title: str, grid: tuple[int, int, int, int], by: str, rows: dict[str, str],
          *, columns: dict[str, str], names: bool = True, sort: str | None = None,
          desc: bool = True, **kw: Any) -> Panel:
    """A table of instant queries, one per column, merged on their labels.

    Every query is reduced to the labels in `by` (plus the vessel's name when `names`), so
    the merge puts one entity on one row. `columns` renames and orders the columns: label
    names, and refIds for the values.
    """
    def keyed(expr: str) -> str:
        reduced = f"max by ({by}) ({expr})"
        return named(reduced) if names else reduced

    targets = [target(keyed(expr), ref, instant=True, table=True) for ref, expr in rows.items()]
    rename = {(f"Value #{k}" if k in rows else k): v for k, v in columns.items()}
    return panel("table", title, grid, targets, transformations=[
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {},
            "includeByName": dict.fromkeys(rename, True),
            "indexByName": {k: i for i, k in enumerate(rename)},
            "renameByName": rename,
        }},
    ], options={
        "showHeader": True, "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        "sortBy": [{"displayName": sort, "desc": desc}] if sort else [],
    }, defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"},
                            "filterable": True}}, **kw)


# Seconds since the vessel's last successful collection. Never: seconds since 1970, so it
# sorts as the oldest, and shows as "never".
SINCE_SUCCESS = ("(time() - max by (vessel) (fleet_vessel_last_success_timestamp_seconds))"
                 " or (time() * max by (vessel) (fleet_vessel_info))")
NEVER = 1e9  # over 31 years ago


def last_success_column() -> dict[str, Any]:
    return column("Last success", unit="dtdurations", mappings=[
        {"type": "range", "options": {"from": NEVER, "to": None,
                                      "result": {"text": "never", "color": RED, "index": 0}}}])


def carrying_status(expr: str, condition: str) -> str:
    """`expr` (one value per vessel) on the vessels matching `condition`, with its status."""
    return f"max by (vessel) ({expr}) + on (vessel) group_right () (0 * ({condition}))"


def column(name: str, **props: Any) -> dict[str, Any]:
    return override("byName", name, **props)


def vessel_link() -> list[dict[str, Any]]:
    """For a table's Vessel column: the row's `vessel` column (kept as Id)."""
    return [{"title": "Open ${__data.fields.name}",
             "url": VESSEL_URL.format(vessel="${__data.fields.vessel}")}]


def tile_link() -> list[dict[str, Any]]:
    """For stat tiles: each is a series labelled with its vessel."""
    return [{"title": "Open ${__field.labels.name}",
             "url": VESSEL_URL.format(vessel="${__field.labels.vessel}")}]


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: list[dict[str, Any]], time_from: str = "now-24h",
              annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    for number, p in enumerate(panels, start=1):
        p["id"] = number
    return {
        "uid": uid, "title": title, "description": description, "tags": TAGS,
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "time": {"from": time_from, "to": "now"}, "refresh": "1m", "timezone": "utc",
        "annotations": {"list": annotations or []},
        "links": [{"title": "fleet-sla", "type": "dashboards", "tags": TAGS, "asDropdown": False,
                   "includeVars": False, "keepTime": True, "targetBlank": False}],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": panels,
    }


def datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": []}


def query_variable(name: str, label: str, query: str, *, regex: str = "", multi: bool = False,
                   hide: int = 0) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-variable"}, "definition": query,
            "regex": regex, "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
            "current": {}, "hide": hide, "options": []}


# --- Fleet overview ------------------------------------------------------------------------

UPTIME = 'fleet_component_uptime_ratio{window="24h", component=~"$component"}'
OBJECTIVE = 'fleet_component_sla_objective_ratio{component=~"$component"}'
MEETS = f"({UPTIME} >= on (vessel, component) group_left {OBJECTIVE})"
# Amber: meets the objective, but has used over half of its 24 h error budget or is down now.
STRAINED = (f"(({UPTIME} < on (vessel, component) group_left () ((1 + {OBJECTIVE}) / 2))"
            f' or on (vessel, component) (fleet_component_up{{component=~"$component"}} == 0))')


BREACHED = "vessel_component:fleet_sla_breach:bool == 1"
# Declared in fleet.yml `maintenance:`; neither up nor down, shown in blue.
IN_MAINTENANCE = 'fleet_component_maintenance{component=~"$component"} == 1'


def outside_maintenance(expr: str) -> str:
    return f"({expr}) unless on (vessel, component) ({IN_MAINTENANCE})"


def by_vessel(expr: str) -> str:
    return named(f"max by (vessel) ({expr})")


def sla_grid(y: int) -> Panel:
    """One tile per vessel, repeated per component; colour is the standing against the
    component's own objective, the number is its 24 h uptime. Tiles come in query order,
    red, amber, blue (maintenance), grey, green, and by uptime within each, so the worst
    are first."""
    breach = f"{UPTIME} < on (vessel, component) group_left {OBJECTIVE}"

    def tiles(expr: str, ref: str) -> dict[str, Any]:
        return target(f"sort({by_vessel(expr)})", ref, "{{name}}", instant=True)

    return stat(
        "$component: 24 h uptime", (0, y, 8, 14),
        [
            tiles(outside_maintenance(breach), "A"),
            tiles(outside_maintenance(f"{MEETS} and on (vessel, component) {STRAINED}"), "B"),
            tiles(f"-2 * ({OBJECTIVE} and on (vessel, component) ({IN_MAINTENANCE}))", "E"),
            # Listed but without a 24 h sample: no data, never counted as up.
            tiles(outside_maintenance(
                f"-1 * ({OBJECTIVE} unless on (vessel, component) {UPTIME})"), "C"),
            tiles(outside_maintenance(f"{MEETS} unless on (vessel, component) {STRAINED}"),
                  "D"),
        ],
        text_mode="value_and_name", unit="percentunit",
        description="Every vessel's 24 h uptime of this component. Red: below its objective. "
                    "Amber: meets it, but has used over half of its error budget or is down "
                    "now. Green: meets it. Blue: in a maintenance window (fleet.yml "
                    "maintenance:), neither up nor down. Grey: no sample in 24 h (no data, "
                    "or never collected). Click a tile for the vessel.",
        defaults={"decimals": 1, "links": tile_link(), "color": fixed(GREEN)},
        overrides=[
            override("frameRefID", "A", color=fixed(RED)),
            override("frameRefID", "B", color=fixed(AMBER)),
            override("frameRefID", "C", color=fixed(GREY), unit="none",
                     mappings=mapping({"-1": ("no data", GREY)})),
            override("frameRefID", "D", color=fixed(GREEN)),
            override("frameRefID", "E", color=fixed(BLUE), unit="none",
                     mappings=mapping({"-2": ("maintenance", BLUE)})),
        ],
        repeat="component", repeatDirection="h", maxPerRow=3,
    )


def overview() -> dict[str, Any]:
    persistent = f"time() - vessel_component:fleet_down_since:timestamp > {THREE_DAYS}"
    problems = 'fleet_vessel_data_status{status!="ok"} == 1'
    health = " or ".join([
        'max by (vessel) (fleet_vessel_data_status{status="unreachable"} == 1) * 3',
        'max by (vessel) (fleet_vessel_data_status{status=~"auth_error|query_error"} == 1) * 5',
        'max by (vessel) (fleet_vessel_data_status{status="stale"} == 1) * 2',
        'max by (vessel) (fleet_vessel_data_status{status="no_data"} == 1) * 4',
        'max by (vessel) (fleet_vessel_data_status{status="clock_skew"} == 1) * 6',
        "max by (vessel) (fleet_component_up == 0) + 1",
    ])
    panels = [
        stat("Fleet compliance", (0, 0, 4, 4), [target("fleet:sla_compliance:ratio",
                                                        instant=True)],
             unit="percentunit", description="Share of components meeting their objective.",
             defaults={"decimals": 1, "min": 0, "max": 1,
                       "thresholds": thresholds((None, RED), (0.9, AMBER), (0.99, GREEN))}),
        stat("Components in breach", (4, 0, 4, 4),
             [target("fleet:components_in_breach:sum", instant=True)],
             defaults={"thresholds": thresholds((None, GREEN), (1, RED))}),
        stat("Down over 3 days", (8, 0, 4, 4),
             [target(f"count({persistent}) or vector(0)", instant=True)],
             description="Components with a device down for more than 3 days: each needs "
                         "a ticket.",
             defaults={"thresholds": thresholds((None, GREEN), (1, RED))}),
        stat("Vessels with data problems", (12, 0, 4, 4),
             [target(f"count({problems}) or vector(0)", instant=True)],
             description="Vessels whose data is stale, missing or could not be collected.",
             defaults={"thresholds": thresholds((None, GREEN), (1, AMBER))}),
        stat("Pending approvals", (16, 0, 4, 4),
             [target("sum(fleet_receiver_approvals_pending)", instant=True)],
             description="Incidents waiting for an approver on the receiver's page.",
             defaults={"thresholds": thresholds((None, GREEN), (1, AMBER))}),
        stat("Overdue approvals", (20, 0, 4, 4),
             [target("sum(fleet_receiver_approvals_overdue)", instant=True)],
             description="Pending approvals past the receiver's approval_timeout.",
             defaults={"thresholds": thresholds((None, GREEN), (1, RED))}),
        sla_grid(4),
        table("Components in breach", (0, 18, 12, 9), "vessel, component", {
            "A": 'fleet_component_uptime_ratio{window="24h"} < on (vessel, component)'
                 " group_left fleet_component_sla_objective_ratio",
            "B": f"fleet_component_sla_objective_ratio and on (vessel, component) {BREACHED}",
            # In breach, the budget is spent: show by how much.
            "C": "-1 * vessel_component:fleet_sla_budget_remaining:seconds"
                 f" and on (vessel, component) {BREACHED}",
        }, columns={"name": "Vessel", "vessel": "Id", "component": "Component",
                    "A": "24 h uptime", "B": "Objective", "C": "Over budget by"},
              sort="24 h uptime", desc=False,
              overrides=[column("24 h uptime", unit="percentunit", decimals=2),
                         column("Objective", unit="percentunit", decimals=1),
                         column("Over budget by", unit="dtdurations"),
                         column("Vessel", links=vessel_link())]),
        table("Down over 3 days", (12, 18, 12, 9), "vessel, component", {
            "A": persistent,
            "B": f"1000 * vessel_component:fleet_down_since:timestamp and ({persistent})",
        }, columns={"name": "Vessel", "vessel": "Id", "component": "Component",
                    "A": "Down for", "B": "Down since"}, sort="Down for",
              description="Remembered across missing data: only a sample showing the "
                          "component back clears a row.",
              overrides=[column("Down for", unit="dtdurations"),
                         column("Down since", unit="dateTimeAsIso"),
                         column("Vessel", links=vessel_link())]),
        panel("state-timeline", "Vessel data health", (0, 27, 16, 12),
              [target(named(health), legend="{{name}}")],
              description="Vessels that are not simply fine, over time. A vessel whose data "
                          "is missing or could not be collected is never shown as up.",
              defaults={"color": {"mode": "thresholds"}, "thresholds": thresholds((None, GREY)),
                        "mappings": mapping({
                            "1": ("confirmed down", RED),
                            "2": ("sync stopped (stale)", AMBER),
                            "3": ("unreachable (collection failed)", PURPLE),
                            "4": ("no data", BLUE),
                            "5": ("auth or query error", DARK_RED),
                            "6": ("clock ahead (clock_skew)", YELLOW),
                        }),
                        "custom": {"fillOpacity": 80, "lineWidth": 0}},
              options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                       "alignValue": "left",
                       "legend": {"showLegend": True, "displayMode": "list",
                                  "placement": "bottom"},
                       "tooltip": {"mode": "single", "sort": "none"}}),
        table("Data problems now", (16, 27, 8, 12), "vessel, status", {
            "A": problems,
            "B": carrying_status(SINCE_SUCCESS, problems),
        }, columns={"name": "Vessel", "vessel": "Id", "status": "Status",
                    "B": "Last success"},
              sort="Last success",
              overrides=[last_success_column(),
                         column("Vessel", links=vessel_link())]),
        timeseries("Fleet compliance", (0, 39, 12, 8),
                   [target("fleet:sla_compliance:ratio", legend="compliance")],
                   unit="percentunit", defaults={"min": 0, "max": 1}),
        timeseries("Approvals", (12, 39, 12, 8), [
            target("sum(fleet_receiver_approvals_pending)", "A", "pending"),
            target("sum(fleet_receiver_approvals_overdue)", "B", "overdue"),
        ], defaults={"decimals": 0}),
    ]
    component = query_variable(
        "component", "Component",
        "label_values(fleet_component_sla_objective_ratio, component)", multi=True)
    component["current"] = {"text": ["All"], "value": ["$__all"]}
    return dashboard("fleet-overview", "Fleet overview",
                     "Every vessel's components against their SLA objectives.", panels,
                     [component])


# --- Vessel detail ---------------------------------------------------------------------------

V = 'vessel="$vessel"'
DEVICE = "vessel, component, device, address"
STATUS_COLOURS = {"ok": GREEN, "stale": AMBER, "no_data": BLUE, "clock_skew": YELLOW,
                  "unreachable": PURPLE, "auth_error": DARK_RED, "query_error": DARK_RED}


def vessel() -> dict[str, Any]:
    panels = [
        stat("Collection status", (0, 0, 6, 4),
             [target(f"fleet_vessel_data_status{{{V}}} == 1", legend="{{status}}",
                     instant=True)],
             text_mode="name",
             description="ok, stale (sync stopped), no_data, clock_skew (its clock runs "
                         "ahead: window ratios unknown), unreachable, auth_error or "
                         "query_error. An unreachable vessel keeps its last known values.",
             overrides=[override("byName", s, color=fixed(c))
                        for s, c in STATUS_COLOURS.items()]),
        stat("Last successful collection", (6, 0, 6, 4),
             [target(f"time() - fleet_vessel_last_success_timestamp_seconds{{{V}}}",
                     instant=True)],
             unit="dtdurations", description="How long ago its InfluxDB last answered.",
             defaults={"thresholds": thresholds((None, GREEN), (1800, AMBER),
                                                (THREE_DAYS, RED))}),
        stat("Newest sample", (12, 0, 6, 4),
             [target(f"time() - fleet_vessel_newest_sample_timestamp_seconds{{{V}}}",
                     instant=True)],
             unit="dtdurations", description="Age of the newest ping sample of any device.",
             defaults={"thresholds": thresholds((None, GREEN), (900, AMBER), (3600, RED))}),
        stat("Last collection", (18, 0, 6, 4), [
            target(f"fleet_vessel_collect_duration_seconds{{{V}}}", "A", "duration",
                   instant=True),
            target(f"fleet_vessel_collect_attempts{{{V}}}", "B", "attempts", instant=True),
            target(f"fleet_vessel_response_bytes{{{V}}}", "C", "bytes", instant=True),
        ], text_mode="value_and_name", color_mode="none",
             overrides=[override("frameRefID", "A", unit="s"),
                        override("frameRefID", "C", unit="decbytes")]),
        timeseries("Component uptime, 24 h", (0, 4, 16, 9), [
            target(f'max without (window) (fleet_component_uptime_ratio{{{V}, window="24h"}})',
                   "A", "{{component}}"),
            target(f"fleet_component_sla_objective_ratio{{{V}}}", "B",
                   "{{component}} objective"),
        ], unit="percentunit", defaults={"decimals": 2, "max": 1},
            overrides=[override("frameRefID", "B", custom__lineStyle={
                "fill": "dash", "dash": [10, 10]}, custom__fillOpacity=0)]),
        table("Components", (16, 4, 8, 9), "vessel, component", {
            "A": f'fleet_component_uptime_ratio{{{V}, window="24h"}}',
            "B": f"fleet_component_sla_objective_ratio{{{V}}}",
            "C": f'fleet_component_devices{{{V}, state="down"}}',
            "D": f'fleet_component_coverage_ratio{{{V}, window="24h"}}',
        }, names=False, columns={"component": "Component", "A": "24 h uptime",
                                 "B": "Objective", "C": "Devices down", "D": "Coverage"},
              overrides=[column("24 h uptime", unit="percentunit", decimals=2),
                         column("Objective", unit="percentunit", decimals=1),
                         column("Coverage", unit="percentunit", decimals=1)]),
        table("Devices", (0, 13, 24, 10), DEVICE, {
            "A": f"fleet_device_up{{{V}}}",
            "B": f"1000 * fleet_device_down_since_timestamp_seconds{{{V}}}",
            "C": f"fleet_device_downtime_age_seconds{{{V}}} > 0",
            "D": f"fleet_device_rtt_seconds{{{V}}}",
            "E": f"fleet_device_packet_loss_ratio{{{V}}}",
            "F": f'fleet_device_uptime_ratio{{{V}, window="24h"}}',
        }, names=False, columns={"device": "Device", "address": "Address",
                                 "component": "Component", "A": "State", "B": "Down since",
                                 "C": "Down for", "D": "RTT", "E": "Loss",
                                 "F": "24 h uptime"}, sort="State", desc=False,
              description="Devices with at least one sample. No state: the newest sample "
                          "is older than stale_after, so up or down is unknown.",
              overrides=[
                  column("State", mappings=mapping({"1": ("up", GREEN), "0": ("down", RED)}),
                         custom__cellOptions={"type": "color-background"}),
                  column("Down since", unit="dateTimeAsIso"),
                  column("Down for", unit="dtdurations"),
                  column("RTT", unit="s", decimals=1),
                  column("Loss", unit="percentunit"),
                  column("24 h uptime", unit="percentunit", decimals=2)]),
        panel("state-timeline", "Devices up", (0, 23, 24, 8),
              [target(DEVICE_STATE, legend="{{device}} ({{address}})")],
              description="Blank: unknown (no fresh sample). Missing data is never up. "
                          "Maintenance: a window of fleet.yml maintenance:, neither up nor "
                          "down.",
              defaults={"color": {"mode": "thresholds"},
                        "mappings": mapping({"1": ("up", GREEN), "0": ("down", RED),
                                             "2": ("maintenance", BLUE)}),
                        "thresholds": thresholds((None, GREY)),
                        "custom": {"fillOpacity": 80, "lineWidth": 0}},
              options={"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                       "legend": {"showLegend": True, "displayMode": "list",
                                  "placement": "bottom"},
                       "tooltip": {"mode": "single", "sort": "none"}}),
        timeseries("Collection", (0, 31, 24, 7), [
            target(f"fleet_vessel_collect_duration_seconds{{{V}}}", "A", "duration"),
            target(f"fleet_vessel_collect_attempts{{{V}}}", "B", "attempts"),
        ], overrides=[override("frameRefID", "A", unit="s"),
                      override("frameRefID", "B", custom__axisPlacement="right",
                               decimals=0)]),
    ]
    variable = query_variable(
        "vessel", "Vessel", "query_result(max by (vessel, name) (fleet_vessel_info))",
        # Shows the vessel's name, keeps its id as the value (labels come sorted).
        regex='/name="(?<text>[^"]*)".*vessel="(?<value>[^"]*)"/')
    return dashboard("fleet-vessel", "Fleet vessel", "One vessel: its components, devices "
                     "and the collection of its data.", panels, [variable],
                     annotations=[maintenance_annotation()])


# Up (1) or down (0), or maintenance (2) while a window is in force on the device.
DEVICE_STATE = (
    f"max by (vessel, component, device, address) (fleet_device_up{{{V}}}"
    f" unless on (vessel, component, device) fleet_device_maintenance{{{V}}})"
    f" or 2 * max by (vessel, component, device, address) (fleet_device_maintenance{{{V}}})")


def maintenance_annotation() -> dict[str, Any]:
    """The vessel's maintenance windows as regions, from the exporter's metrics."""
    expr = (f"max by (maintenance_window, reason, reference) (fleet_device_maintenance{{{V}}}"
            " * on (maintenance_window) group_left (reason, reference)"
            " fleet_maintenance_window_info)")
    return {"name": "Maintenance", "datasource": DS, "enable": True, "hide": False,
            "iconColor": BLUE, "expr": expr, "step": "1m",
            "titleFormat": "Maintenance {{maintenance_window}}",
            "textFormat": "{{reason}} {{reference}}", "tagKeys": "maintenance_window",
            "useValueForTime": False}


# --- Collection health -----------------------------------------------------------------------

FAILED = 'fleet_vessel_data_status{status=~"unreachable|auth_error|query_error"} == 1'


def collection() -> dict[str, Any]:
    panels = [
        stat("Exporter", (0, 0, 4, 4), [target('up{job="fleet-exporter"}', instant=True)],
             text_mode="value", defaults={"mappings": mapping({"1": ("up", GREEN),
                                                               "0": ("down", RED)})}),
        stat("Last run", (4, 0, 5, 4),
             [target("time() - max(fleet_collection_last_run_timestamp_seconds)",
                     instant=True)], unit="dtdurations", color_mode="none"),
        stat("Failing vessels", (9, 0, 5, 4),
             [target(f"count({FAILED}) or vector(0)", instant=True)],
             defaults={"thresholds": thresholds((None, GREEN), (1, AMBER))}),
        stat("Retries in the last run", (14, 0, 5, 4),
             [target("sum(fleet_vessel_collect_attempts - 1)", instant=True)],
             color_mode="none"),
        stat("Bytes in the last run", (19, 0, 5, 4),
             [target("sum(fleet_vessel_response_bytes)", instant=True)], unit="decbytes",
             color_mode="none"),
        timeseries("Run duration", (0, 4, 12, 8), [
            target("fleet_collection_duration_seconds", "A", "run {{instance}}"),
            target("fleet_collection_interval_seconds", "B", "interval {{instance}}"),
        ], unit="s", description="A run longer than the interval delays the next one."),
        timeseries("Runs per hour, by result", (12, 4, 12, 8), [
            target("3600 * sum by (result) (rate(fleet_collection_runs_total"
                   "[$__rate_interval]))", legend="{{result}}"),
        ], stack=True, defaults={"decimals": 1},
            overrides=[override("byName", "success", color=fixed(GREEN)),
                       override("byName", "partial", color=fixed(AMBER)),
                       override("byName", "failed", color=fixed(RED))]),
        timeseries("Failing vessels by error kind", (0, 12, 12, 8),
                   [target(f"count by (status) ({FAILED})", legend="{{status}}")],
                   stack=True, defaults={"decimals": 0},
                   overrides=[override("byName", s, color=fixed(STATUS_COLOURS[s]))
                              for s in ("unreachable", "auth_error", "query_error")]),
        timeseries("Retries", (12, 12, 12, 8), [
            target("sum(fleet_vessel_collect_attempts - 1)", "A", "retries in the last run"),
            target("count(fleet_vessel_collect_attempts > 1)", "B", "vessels retried"),
        ], defaults={"decimals": 0}),
        table("Failing vessels", (0, 20, 12, 10), "vessel, status", {
            "A": FAILED,
            "B": carrying_status("fleet_vessel_collect_attempts", FAILED),
            "C": carrying_status(SINCE_SUCCESS, FAILED),
        }, columns={"name": "Vessel", "vessel": "Id", "status": "Error kind",
                    "B": "Attempts", "C": "Last success"}, sort="Last success",
              overrides=[last_success_column(),
                         column("Vessel", links=vessel_link())]),
        table("Per vessel", (12, 20, 12, 10), "vessel", {
            "A": "time() - fleet_vessel_newest_sample_timestamp_seconds",
            "B": "fleet_vessel_response_bytes",
            "C": "fleet_vessel_collect_duration_seconds",
        }, columns={"name": "Vessel", "vessel": "Id", "A": "Newest sample age",
                    "B": "Bytes", "C": "Duration"}, sort="Newest sample age",
              description="Vessels without any sample have no age; see Failing vessels and "
                          "the overview's data health.",
              overrides=[column("Newest sample age", unit="dtdurations",
                                thresholds=thresholds((None, GREEN), (900, AMBER),
                                                      (3600, RED)),
                                custom__cellOptions={"type": "color-text"}),
                         column("Bytes", unit="decbytes"),
                         column("Duration", unit="s"),
                         column("Vessel", links=vessel_link())]),
        # The ten are chosen at the end of the range (@ end()), so each keeps one line.
        timeseries("Bytes per vessel (top 10)", (0, 30, 12, 8),
                   [target(named("max by (vessel) (fleet_vessel_response_bytes) and on (vessel)"
                                 " topk(10, max by (vessel) (fleet_vessel_response_bytes"
                                 " @ end()))"),
                           legend="{{name}}")], unit="decbytes"),
        timeseries("Newest sample age (oldest 10)", (12, 30, 12, 8),
                   [target(named("max by (vessel) (time() -"
                                 " fleet_vessel_newest_sample_timestamp_seconds) and on (vessel)"
                                 " bottomk(10, max by (vessel)"
                                 " (fleet_vessel_newest_sample_timestamp_seconds @ end()))"),
                           legend="{{name}}")], unit="dtdurations"),
    ]
    return dashboard("fleet-collection", "Fleet collection health",
                     "How well the exporter reaches the vessels' InfluxDBs.", panels, [],
                     time_from="now-6h")


def dashboards() -> Iterator[dict[str, Any]]:
    yield overview()
    yield vessel()
    yield collection()


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed JSON instead of writing it")
    args = parser.parse_args(argv)
    stale = []
    for board in dashboards():
        path = OUT / f"{board['uid']}.json"
        text = render(board)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python grafana/generate.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
