"""HTML from jinja2 templates, autoescaped."""

import asyncio
from typing import Any

import jinja2
from aiohttp import web

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("receiver", "templates"),
    autoescape=True,  # alert labels come from anywhere: never trust them as HTML
)


def render(template: str, status: int = 200, **context: Any) -> web.Response:
    html = TEMPLATES.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html")


async def render_off_loop(template: str, status: int = 200, **context: Any) -> web.Response:
    """For pages that can grow with the fleet: the loop keeps serving while they render
    (jinja2 is pure Python; a thread gives the loop the GIL back every few ms)."""
    html = await asyncio.to_thread(TEMPLATES.get_template(template).render, **context)
    return web.Response(text=html, status=status, content_type="text/html")
