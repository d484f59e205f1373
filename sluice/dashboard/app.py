"""The dashboard's FastAPI app: the page, its assets, and its data endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from sluice.dashboard.collector import Collector

ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


def _asset(name: str) -> bytes:
    return resources.files("sluice.dashboard").joinpath("static", name).read_bytes()


def create_app(collector: Collector, *, run_threads: bool = True) -> FastAPI:
    """The app; with ``run_threads`` the collector samples while the app is up."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_threads:
            collector.start()
        try:
            yield
        finally:
            if run_threads:
                collector.stop()

    app = FastAPI(title="Sluice dashboard", lifespan=lifespan, docs_url=None, redoc_url=None)
    page = _asset("index.html").decode("utf-8")
    assets = {name: _asset(name) for name in ASSETS}

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """The page (it polls ``/api/data``)."""
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        """The page's script and style, shipped in the package."""
        if name not in assets:
            raise HTTPException(status_code=404, detail=f"no asset {name}")
        return Response(assets[name], media_type=ASSETS[name])

    @app.get("/api/data")
    def data() -> dict[str, Any]:
        """Lag, throughput, errors and the last reconcile (see ``Collector.snapshot``)."""
        return collector.snapshot()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Up, and how many samples were taken."""
        return {"ok": True, "samples": collector.samples}

    return app
