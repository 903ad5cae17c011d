"""HTTP serving: POST /predict, GET /heads, GET /health. Heads hot-swap under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from mtl_registry.runtime import Runtime
from mtl_registry.serving.lane import InferenceLane


class Limits(BaseModel):
    """Input limits per request; anything outside them is a 4xx, never a crash."""

    max_texts: int = Field(64, ge=1)
    max_chars: int = Field(2000, ge=1)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(runtime: Runtime, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    lane = InferenceLane(runtime)  # every model call of this app goes through it

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            lane.close()

    app = FastAPI(title="mtl_registry", version="1", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return _error(400, f"body is not valid JSON: {first.get('ctx', {}).get('error', '')}")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where or 'body'}: {first.get('msg')}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.post("/predict")
    async def predict(body: PredictRequest) -> list[dict[str, Any]]:
        if not body.texts:
            raise HTTPException(422, "texts: give at least one text")
        if len(body.texts) > limits.max_texts:
            raise HTTPException(
                413, f"texts: {len(body.texts)} texts, the limit is {limits.max_texts}"
            )
        for i, text in enumerate(body.texts):
            if not text.strip():
                raise HTTPException(422, f"texts[{i}]: empty text")
            if len(text) > limits.max_chars:
                raise HTTPException(
                    413, f"texts[{i}]: {len(text)} characters, the limit is {limits.max_chars}"
                )
        return await asyncio.wrap_future(lane.submit(body.texts))

    @app.get("/heads")
    def heads() -> list[dict[str, Any]]:
        return runtime.status()

    @app.get("/health")
    def health() -> dict[str, Any]:
        current = runtime.heads
        return {
            "status": "ok",
            "generation": current.generation,
            **current.versions,
            "errors": {t: s.error for t, s in runtime.swaps.items() if s.error},
        }

    return app


def serve(
    runtime: Runtime, host: str, port: int, limits: Limits | None = None, poll_interval: float = 0.2
) -> None:
    """Run until interrupted, following the registry's active pointers."""
    import uvicorn

    from mtl_registry.runtime import RegistryWatcher

    watcher = RegistryWatcher(runtime, poll_interval).start()
    try:
        uvicorn.run(create_app(runtime, limits), host=host, port=port, log_level="warning")
    finally:
        watcher.stop()
