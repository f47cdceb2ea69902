"""A fake JIRA that speaks the REST endpoints the `jira` library calls.

Server mode has the classic /rest/api/2/search; Cloud mode has only the enhanced
search/jql (the classic one answers 410 there), and its search is eventually consistent:
a new issue shows up only after `search_lag` further searches. `down` answers 503.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TRANSITIONS = [{"id": "31", "name": "Done", "to": {"name": "Done"}},
               {"id": "11", "name": "Reopen", "to": {"name": "Open"}}]


@dataclass
class FakeJira:
    cloud: bool = False
    project: str = "OPS"
    down: bool = False
    search_lag: int = 0
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorizations: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "METHOD /path", in order
    _unseen: dict[str, int] = field(default_factory=dict)  # key -> searches until visible

    def add_issue(self, fields: dict[str, Any], status: str = "Open") -> str:
        key = f"{self.project}-{len(self.issues) + 1}"
        self.issues[key] = {"id": str(10000 + len(self.issues) + 1), "key": key,
                            "fields": fields, "status": status, "comments": []}
        if self.cloud and self.search_lag:
            self._unseen[key] = self.search_lag
        return key

    @web.middleware
    async def _gate(self, request: web.Request, handler):
        self.authorizations.append(request.headers.get("Authorization", ""))
        self.requests.append(f"{request.method} {request.path}")
        if self.down:
            return web.json_response({"errorMessages": ["maintenance"]}, status=503)
        return await handler(request)

    def _issue_json(self, request: web.Request, issue: dict[str, Any]) -> dict[str, Any]:
        return {"id": issue["id"], "key": issue["key"],
                "self": f"{request.url.origin()}/rest/api/2/issue/{issue['id']}",
                "fields": {**issue["fields"], "status": {"name": issue["status"]}}}

    async def server_info(self, request: web.Request) -> web.Response:
        return web.json_response({
            "baseUrl": str(request.url.origin()), "serverTitle": "fake",
            "version": "1001.0.0" if self.cloud else "9.12.0",
            "versionNumbers": [1001, 0, 0] if self.cloud else [9, 12, 0],
            "deploymentType": "Cloud" if self.cloud else "Server", "buildNumber": 1,
        })

    async def fields(self, request: web.Request) -> web.Response:
        names = ["summary", "description", "labels", "project", "issuetype", "status"]
        return web.json_response([{"id": n, "name": n.title(), "clauseNames": [n]}
                                  for n in names])

    async def create(self, request: web.Request) -> web.Response:
        fields = (await request.json())["fields"]
        if fields.get("project", {}).get("key") != self.project:
            return web.json_response(
                {"errorMessages": [], "errors": {"project": "project is required"}}, status=400)
        key = self.add_issue(fields)
        issue = self.issues[key]
        return web.json_response({"id": issue["id"], "key": key,
                                  "self": f"{request.url.origin()}/rest/api/2/issue/{key}"},
                                 status=201)

    def _search(self, jql: str) -> list[dict[str, Any]]:
        self.searches.append(jql)
        label = re.search(r'labels = "([^"]+)"', jql)
        found = []
        for key, issue in self.issues.items():
            if self._unseen.get(key, 0) > 0:
                self._unseen[key] -= 1
                continue
            if label and label.group(1) not in issue["fields"].get("labels", []):
                continue
            if "statusCategory != Done" in jql and issue["status"] == "Done":
                continue
            found.append(issue)
        return found

    async def search(self, request: web.Request) -> web.Response:
        if self.cloud:  # removed from Cloud
            return web.json_response({"errorMessages": ["gone"]}, status=410)
        found = self._search(request.query["jql"])
        return web.json_response({"startAt": 0, "maxResults": 50, "total": len(found),
                                  "issues": [self._issue_json(request, i) for i in found]})

    async def search_jql(self, request: web.Request) -> web.Response:
        if not self.cloud:
            return web.json_response({"errorMessages": ["not found"]}, status=404)
        jql = (await request.json())["jql"] if request.method == "POST" else request.query["jql"]
        found = self._search(jql)
        return web.json_response({"issues": [self._issue_json(request, i) for i in found],
                                  "isLast": True})

    def _find(self, request: web.Request) -> dict[str, Any]:
        key = request.match_info["key"]
        for issue in self.issues.values():
            if key in (issue["key"], issue["id"]):
                return issue
        raise web.HTTPNotFound(text='{"errorMessages": ["Issue does not exist"]}',
                               content_type="application/json")

    async def get_issue(self, request: web.Request) -> web.Response:
        return web.json_response(self._issue_json(request, self._find(request)))

    async def comment(self, request: web.Request) -> web.Response:
        issue = self._find(request)
        body = (await request.json())["body"]
        issue["comments"].append(body)
        return web.json_response({"id": str(len(issue["comments"])), "body": body,
                                  "self": str(request.url)}, status=201)

    async def transitions(self, request: web.Request) -> web.Response:
        self._find(request)
        return web.json_response({"transitions": TRANSITIONS})

    async def transition(self, request: web.Request) -> web.Response:
        issue = self._find(request)
        wanted = str((await request.json())["transition"]["id"])
        issue["status"] = next(t["to"]["name"] for t in TRANSITIONS if t["id"] == wanted)
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/rest/api/2/serverInfo", self.server_info)
        app.router.add_get("/rest/api/2/field", self.fields)
        app.router.add_post("/rest/api/2/issue", self.create)
        app.router.add_get("/rest/api/2/search", self.search)
        for version in ("2", "3"):
            app.router.add_get(f"/rest/api/{version}/search/jql", self.search_jql)
            app.router.add_post(f"/rest/api/{version}/search/jql", self.search_jql)
        app.router.add_get("/rest/api/2/issue/{key}", self.get_issue)
        app.router.add_post("/rest/api/2/issue/{key}/comment", self.comment)
        app.router.add_get("/rest/api/2/issue/{key}/transitions", self.transitions)
        app.router.add_post("/rest/api/2/issue/{key}/transitions", self.transition)
        return app
