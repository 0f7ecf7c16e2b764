"""The FastAPI app: ``create_app(settings)`` builds it; the lifespan opens the database,
runs migrations and loads the live model, so importing this module costs nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from service.analysis import EncoderHolder
from service.api.main import api_router
from service.db import make_engine, make_session_factory, upgrade
from service.deps import NotAuthenticated
from service.jobs import JobRunner
from service.pages.main import pages_router
from service.registry_runtime import ModelRuntime
from service.settings import Settings
from service.state import AppState

log = logging.getLogger("tian.service")
STATIC = Path(__file__).parent / "static"


def build_state(settings: Settings) -> AppState:
    """Open the database (migrated to the newest schema) and prepare the model runtime."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return AppState(
        settings=settings,
        engine=engine,
        factory=make_session_factory(engine),
        runtime=ModelRuntime(settings.registry_root, settings.model_dir),
        encoders=EncoderHolder(settings.encoder),
        jobs=JobRunner(background=settings.background_jobs),
    )


def create_app(settings: Settings | None = None, *, load_model: bool = True) -> FastAPI:
    """Build the app. The database and model are opened when the app starts (lifespan)."""
    settings = settings or Settings()
    secret = settings.resolved_secret_key()  # refuse an unsafe key before serving anything

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings)
        if load_model:
            state.runtime.start()
        app.state.tian = state
        try:
            yield
        finally:
            state.jobs.shutdown()
            state.engine.dispose()

    app = FastAPI(
        title="tian 提案审核服务",
        version="0.1.0",
        description="Suggestions, duplicates and reference topics for CPPCC proposal review.",
        lifespan=lifespan,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="tian_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.include_router(api_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(NotAuthenticated)
    async def _not_signed_in(request: Request, exc: NotAuthenticated) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"detail": "sign in first (session cookie or bearer token)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
