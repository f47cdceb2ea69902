"""The committed dashboards and their provisioning: valid, generated, linked, portable."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana import DASHBOARDS, load_dashboards, panels, variables

ROOT = Path(__file__).parent.parent
BOARDS = load_dashboards()
LINK = re.compile(r"/d/([\w-]+)/")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


class TestStructure:
    def test_the_three_dashboards_have_stable_unique_uids(self):
        uids = [board["uid"] for board in BOARDS.values()]
        assert sorted(uids) == ["fleet-collection", "fleet-overview", "fleet-vessel"]
        assert all(f"{board['uid']}.json" == name for name, board in BOARDS.items())

    @pytest.mark.parametrize("name", BOARDS)
    def test_panel_ids_are_unique_and_every_panel_has_a_place(self, name: str):
        board = BOARDS[name]
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
        taken: set[tuple[int, int]] = set()
        for panel in panels(board):
            grid = panel["gridPos"]
            assert {"x", "y", "w", "h"} <= set(grid), panel["title"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & taken, f"{panel['title']} overlaps another panel"
            taken |= cells

    @pytest.mark.parametrize("name", BOARDS)
    def test_every_query_uses_the_datasource_variable(self, name: str):
        board = BOARDS[name]
        assert variables(board)[0] == {**variables(board)[0], "name": "datasource",
                                       "type": "datasource", "query": "prometheus"}
        for panel in panels(board):
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
                assert target["expr"].strip(), panel["title"]

    @pytest.mark.parametrize("name", BOARDS)
    def test_no_instance_address_is_hard_coded(self, name: str):
        text = json.dumps(BOARDS[name])
        assert not re.search(r"https?://|localhost|\b\d+\.\d+\.\d+\.\d+\b|:\d{4,5}\b", text)

    @pytest.mark.parametrize("name", BOARDS)
    def test_panels_say_what_they_show(self, name: str):
        for panel in panels(BOARDS[name]):
            assert panel["title"].strip()
            for target in panel["targets"]:
                assert target["refId"]
                assert target["instant"] != target["range"]


class TestGenerator:
    def test_committed_json_matches_the_generator(self):
        result = subprocess.run([sys.executable, "grafana/generate.py", "--check"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr

    def test_check_names_a_stale_dashboard(self, tmp_path: Path):
        # A copy of the generator beside an edited dashboard must notice the edit.
        (tmp_path / "dashboards").mkdir()
        generator = tmp_path / "generate.py"
        generator.write_text((ROOT / "grafana/generate.py").read_text())
        for path in DASHBOARDS.glob("*.json"):
            (tmp_path / "dashboards" / path.name).write_text(path.read_text())
        edited = tmp_path / "dashboards" / "fleet-vessel.json"
        edited.write_text(edited.read_text().replace("Devices", "Gadgets"))
        result = subprocess.run([sys.executable, str(generator), "--check"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "out of date: fleet-vessel.json" in result.stderr


class TestLinks:
    def test_dashboard_links_reach_existing_dashboards(self):
        uids = {board["uid"] for board in BOARDS.values()}
        linked = {m for board in BOARDS.values() for s in _strings(board)
                  for m in LINK.findall(s)}
        assert linked and linked <= uids

    def test_the_overview_links_each_vessel_to_its_detail(self):
        overview = BOARDS["fleet-overview.json"]
        grid = next(p for p in panels(overview) if p.get("repeat") == "component")
        [link] = grid["fieldConfig"]["defaults"]["links"]
        assert link["url"].startswith("/d/fleet-vessel/fleet-vessel?var-vessel=")
        vessel = BOARDS["fleet-vessel.json"]
        assert "vessel" in {v["name"] for v in variables(vessel)}

    def test_links_take_the_vessel_from_what_their_panel_has(self):
        """A table cell has no series labels, only its row's columns; a tile has labels."""
        checked = 0
        for board in BOARDS.values():
            for panel in panels(board):
                config = panel["fieldConfig"]
                links = [link for link in config["defaults"].get("links", [])] + [
                    prop["value"][0] for o in config["overrides"] for prop in o["properties"]
                    if prop["id"] == "links"]
                for link in links:
                    text = link["url"] + link["title"]
                    fields = set(re.findall(r"__data\.fields\.(\w+)", text))
                    labels = set(re.findall(r"__field\.labels\.(\w+)", text))
                    if panel["type"] == "table":
                        [organize] = [t for t in panel["transformations"]
                                      if t["id"] == "organize"]
                        assert not labels, panel["title"]
                        assert fields and fields <= set(organize["options"]["includeByName"]), \
                            panel["title"]
                    else:
                        assert not fields and labels == {"vessel", "name"}, panel["title"]
                    assert "${datasource:queryparam}" in link["url"]
                    checked += 1
        assert checked >= 6

    def test_alert_and_receiver_links_point_at_our_dashboards(self):
        uids = {board["uid"] for board in BOARDS.values()}
        rules = yaml.safe_load((ROOT / "rules/fleet-sla.rules.yml").read_text())
        urls = [rule["annotations"]["dashboard_url"] for group in rules["groups"]
                for rule in group["rules"] if "alert" in rule]
        for example in ("deploy/receiver.example.yml", "deploy/demo/receiver.yml"):
            urls.append(yaml.safe_load((ROOT / example).read_text())["links"]["grafana"])
        assert urls
        for url in urls:
            assert set(LINK.findall(url)) <= uids and LINK.search(url), url
            if "fleet-vessel" in url:
                assert "var-vessel=" in url, url


class TestProvisioning:
    def test_datasource_is_the_default_prometheus(self):
        doc = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml")
                             .read_text())
        [source] = doc["datasources"]
        assert source["type"] == "prometheus" and source["isDefault"] is True
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        host_port = source["url"].removeprefix("http://")
        host, port = host_port.split(":")
        service = compose["services"][host]
        assert service["image"].startswith("prom/prometheus:")
        # The container listens on Prometheus's default port unless told otherwise.
        assert not any("web.listen-address" in arg for arg in service["command"])
        assert port == "9090"

    def test_dashboard_provider_reads_where_compose_mounts_the_json(self):
        doc = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/fleet-sla.yml")
                             .read_text())
        [provider] = doc["providers"]
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        mounts = {v.split(":")[1]: v.split(":")[0]
                  for v in compose["services"]["grafana"]["volumes"]}
        assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
        assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
        home = compose["services"]["grafana"]["environment"][
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        assert Path(home).name in {f"{b['uid']}.json" for b in BOARDS.values()}


class TestMaintenance:
    """Windows of fleet.yml `maintenance:` show as maintenance, never as a gap or a breach."""

    def test_the_vessel_dashboard_shows_windows_as_annotations_from_the_metrics(self):
        [annotation] = BOARDS["fleet-vessel.json"]["annotations"]["list"]
        assert annotation["datasource"]["uid"] == "${datasource}"
        assert annotation["enable"] is True
        assert 'fleet_device_maintenance{vessel="$vessel"}' in annotation["expr"]
        assert "fleet_maintenance_window_info" in annotation["expr"]
        assert "{{maintenance_window}}" in annotation["titleFormat"]
        assert "{{reason}}" in annotation["textFormat"]
        assert "{{reference}}" in annotation["textFormat"]

    def test_the_device_timeline_shows_maintenance_not_a_gap(self):
        timeline = next(p for p in panels(BOARDS["fleet-vessel.json"])
                        if p["type"] == "state-timeline")
        [query] = timeline["targets"]
        assert "fleet_device_maintenance" in query["expr"]
        [values] = timeline["fieldConfig"]["defaults"]["mappings"]
        assert values["options"]["2"]["text"] == "maintenance"

    def test_the_overview_grid_has_a_colour_for_maintenance(self):
        grid = next(p for p in panels(BOARDS["fleet-overview.json"])
                    if p.get("repeat") == "component")
        queries = {t["refId"]: t["expr"] for t in grid["targets"]}
        maintenance = [ref for ref, expr in queries.items()
                       if "and on (vessel, component) (fleet_component_maintenance" in expr]
        assert len(maintenance) == 1
        [ref] = maintenance
        # Every other colour leaves a component in maintenance out: one tile each.
        for other, expr in queries.items():
            if other != ref:
                assert "unless on (vessel, component) (fleet_component_maintenance" in expr
        [colour] = [o for o in grid["fieldConfig"]["overrides"]
                    if o["matcher"]["options"] == ref]
        props = {p["id"]: p["value"] for p in colour["properties"]}
        colours = {p["value"]["fixedColor"] for o in grid["fieldConfig"]["overrides"]
                   for p in o["properties"] if p["id"] == "color"}
        assert props["color"]["fixedColor"] == "blue" and len(colours) == len(queries)
        [values] = props["mappings"]
        assert [v["text"] for v in values["options"].values()] == ["maintenance"]
