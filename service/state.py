"""The objects one running service holds (built by :func:`service.app.create_app`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.analysis import EncoderHolder
from service.jobs import JobRunner
from service.registry_runtime import ModelRuntime
from service.settings import Settings


@dataclass
class AppState:
    """Settings, database, live model, text encoder and background jobs."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    runtime: ModelRuntime
    encoders: EncoderHolder
    jobs: JobRunner
