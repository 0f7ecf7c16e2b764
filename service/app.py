"""The FastAPI app: ``create_app(settings)`` builds it; the lifespan opens the database,
runs migrations and loads the live model, so importing this module costs nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from service.analysis import EncoderHolder
from service.api.main import api_router
from service.db import make_engine, make_session_factory, upgrade
from service.deps import NotAuthenticated
from service.files import private_dir
from service.guard import UploadGuard
from service.jobs import JobRunner
from service.pages.main import pages_router
from service.registry_runtime import ModelRuntime
from service.settings import Settings
from service.state import AppState
from service.uploads import clean_uploads

log = logging.getLogger("tian.service")
STATIC = Path(__file__).parent / "static"
# Everything from this server only; inline style attributes (the score bars) are the one
# exception, inline scripts are not allowed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
CACHEABLE = ("/static/", "/docs-static/")


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Validation errors without the submitted values (no password or megabyte text echoed)."""
    return [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
        for e in exc.errors()[:20]
    ]


def mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI 5 from the installed ``swagger-ui-bundle-v2`` package, no CDN."""
    import swagger_ui_bundle

    app.mount(
        "/docs-static",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="docs-static",
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # The start-up script is a file too (static/docs.js): the CSP allows no inline script.
        return HTMLResponse(DOCS_PAGE)


DOCS_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>tian API 文档</title>
<link rel="stylesheet" href="/docs-static/swagger-ui.css"></head>
<body><div id="swagger-ui" data-url="/openapi.json"></div>
<script src="/docs-static/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>
"""


def build_state(settings: Settings, *, migrate: bool = True) -> AppState:
    """Open the database (migrated to the newest schema) and prepare the model runtime.

    ``migrate=False`` in the worker processes of ``tian serve --workers N``: the parent
    migrated once before starting them (N workers migrating at once would race).
    """
    private_dir(settings.data_dir)  # names and password hashes live here: 0700
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    factory = make_session_factory(engine)
    jobs = JobRunner(factory, background=settings.background_jobs)
    jobs.start()  # jobs of a process that died are reported as interrupted
    clean_uploads(settings.data_dir / "uploads")  # files left by a crash
    return AppState(
        settings=settings,
        engine=engine,
        factory=factory,
        runtime=ModelRuntime(settings.registry_root, settings.model_dir),
        encoders=EncoderHolder(settings.encoder),
        jobs=jobs,
    )


def create_worker_app() -> FastAPI:
    """The app of one worker process of ``tian serve --workers N`` (uvicorn ``--factory``).

    Settings come from the ``TIAN_*`` variables the parent set; the parent has migrated the
    schema and done the start-up work, so a worker (or one uvicorn restarts) only serves.
    """
    return create_app(Settings(), migrate=False)


def create_app(
    settings: Settings | None = None, *, load_model: bool = True, migrate: bool = True
) -> FastAPI:
    """Build the app. The database and model are opened when the app starts (lifespan)."""
    settings = settings or Settings()
    secret = settings.resolved_secret_key()  # refuse an unsafe key before serving anything

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings, migrate=migrate)
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
        docs_url=None,  # served below from installed files: offices run offline
        redoc_url=None,
    )
    # Added before the session middleware so that it runs inside it (the cookie is decoded).
    app.add_middleware(
        UploadGuard,
        max_upload_bytes=settings.max_upload_bytes,
        max_body_bytes=settings.max_body_bytes,
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
    mount_docs(app)

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

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if not request.url.path.startswith(CACHEABLE):
            # Pages and API answers hold proposals and names: never keep them in a cache.
            response.headers["Cache-Control"] = "no-store"
        return response

    return app
