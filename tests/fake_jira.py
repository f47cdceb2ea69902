"""A fake JIRA that speaks the REST endpoints the `jira` library calls.

Server mode has the classic /rest/api/2/search; Cloud mode has only the enhanced
search/jql (the classic one answers 410 there), and its search is eventually consistent:
a new issue shows up only after `search_lag` further searches, or, with a `clock`, only
`search_lag_seconds` after it was made. GET on an issue or its comments is consistent.

Failures to script: `down` answers `down_status` (503) with `retry_after`; `answers` replaces
an operation's answer ("create", "search", "transitions", "comment": (status, JSON)) after
the work is done; `on_create` / `on_comment` = "hold" does the work and never answers,
"reset" does it and drops the connection, "reset-before" drops it without doing it.
"""

import asyncio
import re
from collections.abc import Callable
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
    clock: Callable[[], float] | None = None
    search_lag_seconds: float = 0.0
    down_status: int = 503
    retry_after: str | None = None
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    on_create: str | None = None
    on_comment: str | None = None
    created: asyncio.Event = field(default_factory=asyncio.Event)
    commented: asyncio.Event = field(default_factory=asyncio.Event)

    def add_issue(self, fields: dict[str, Any], status: str = "Open") -> str:
        key = f"{self.project}-{len(self.issues) + 1}"
        self.issues[key] = {"id": str(10000 + len(self.issues) + 1), "key": key,
                            "fields": fields, "status": status, "comments": [],
                            "created": self.clock() if self.clock else 0.0}
        if self.cloud and self.search_lag:
            self._unseen[key] = self.search_lag
        return key

    def posted(self, path: str) -> int:
        """How many POSTs reached `path`."""
        return self.requests.count(f"POST {path}")

    async def _misbehave(self, request: web.Request, mode: str | None) -> None:
        """After the work: never answer, or drop the connection."""
        if mode == "hold":
            await asyncio.Event().wait()
        if mode in ("reset", "reset-before"):
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing more is sent on a closed connection

    @web.middleware
    async def _gate(self, request: web.Request, handler):
        self.authorizations.append(request.headers.get("Authorization", ""))
        self.requests.append(f"{request.method} {request.path}")
        if self.down:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"errorMessages": ["maintenance"]},
                                     status=self.down_status, headers=headers)
        return await handler(request)

    def _scripted(self, operation: str) -> web.Response | None:
        if operation not in self.answers:
            return None
        status, document = self.answers[operation]
        return web.json_response(document, status=status)

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
        if self.on_create == "reset-before":
            await self._misbehave(request, self.on_create)
        key = self.add_issue(fields)
        self.created.set()
        await self._misbehave(request, self.on_create)
        if scripted := self._scripted("create"):
            return scripted
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
            if (self.cloud and self.clock is not None
                    and self.clock() - issue["created"] < self.search_lag_seconds):
                continue
            if label and label.group(1) not in issue["fields"].get("labels", []):
                continue
            if "statusCategory != Done" in jql and issue["status"] == "Done":
                continue
            found.append(issue)
        return found

    async def search(self, request: web.Request) -> web.Response:
        if scripted := self._scripted("search"):
            return scripted
        if self.cloud:  # removed from Cloud
            return web.json_response({"errorMessages": ["gone"]}, status=410)
        found = self._search(request.query["jql"])
        return web.json_response({"startAt": 0, "maxResults": 50, "total": len(found),
                                  "issues": [self._issue_json(request, i) for i in found]})

    async def search_jql(self, request: web.Request) -> web.Response:
        if not self.cloud:
            return web.json_response({"errorMessages": ["not found"]}, status=404)
        jql = (await request.json())["jql"] if request.method == "POST" else request.query["jql"]
        if scripted := self._scripted("search"):
            self.searches.append(jql)
            return scripted
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
        if self.on_comment == "reset-before":
            await self._misbehave(request, self.on_comment)
        issue["comments"].append(body)
        self.commented.set()
        await self._misbehave(request, self.on_comment)
        if scripted := self._scripted("comment"):
            return scripted
        return web.json_response({"id": str(len(issue["comments"])), "body": body,
                                  "self": str(request.url)}, status=201)

    async def comments(self, request: web.Request) -> web.Response:
        issue = self._find(request)
        found = [{"id": str(n), "body": body} for n, body in enumerate(issue["comments"], 1)]
        return web.json_response({"startAt": 0, "maxResults": 5000, "total": len(found),
                                  "comments": found})

    async def transitions(self, request: web.Request) -> web.Response:
        self._find(request)
        if scripted := self._scripted("transitions"):
            return scripted
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
        app.router.add_get("/rest/api/2/issue/{key}/comment", self.comments)
        app.router.add_get("/rest/api/2/issue/{key}/transitions", self.transitions)
        app.router.add_post("/rest/api/2/issue/{key}/transitions", self.transition)
        return app
