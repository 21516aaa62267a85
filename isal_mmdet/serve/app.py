"""The HTTP side of the backend: Label Studio's ML backend routes (``/health``, ``/setup``,
``/predict``, ``/webhook``, ``/train``, ``/versions``) on FastAPI. Every error is a JSON
``{"error": ...}`` response, one line in the log and an entry of ``/health``'s ``errors``; no
request can stop the server."""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .backend import Backend, RequestError

logger = logging.getLogger('isal_mmdet.serve')


def _error(backend: Backend, request: Request, status: int, message: str) -> JSONResponse:
    message = ' '.join(message.split())
    logger.warning('%s %s: %d %s', request.method, request.url.path, status, message)
    backend.note_error(f'{request.method} {request.url.path}', message, status)
    return JSONResponse(dict(error=message), status_code=status)


async def _answer(backend: Backend, request: Request, handle: Callable[..., dict],
                  with_body: bool) -> Any:
    """``handle(body)`` (or ``handle()``) in a worker thread, its errors as responses."""
    try:
        args = ()
        if with_body:
            try:
                args = (json.loads(await request.body()),)
            except (ValueError, UnicodeDecodeError):
                raise RequestError(400, 'the body is not JSON') from None
            except RecursionError:
                raise RequestError(400, 'the body is nested too deeply') from None
        return JSONResponse(await run_in_threadpool(handle, *args))
    except RequestError as e:
        return _error(backend, request, e.status, str(e))
    except Exception as e:  # noqa: BLE001 - one bad request must not take the server down
        return _error(backend, request, 500, f'{type(e).__name__}: {e}')


def create_app(backend: Backend) -> FastAPI:
    """The routes over ``backend``; no API docs pages (nothing but Label Studio calls it)."""
    app = FastAPI(title='isal_mmdet Label Studio ML backend', docs_url=None, redoc_url=None,
                  openapi_url=None)
    for path, handle in (('/setup', backend.setup), ('/predict', backend.predict),
                         ('/webhook', backend.webhook), ('/train', backend.train)):
        app.add_api_route(path, _route(backend, handle, True), methods=['POST'])
    for path, handle in (('/', backend.health), ('/health', backend.health),
                         ('/versions', backend.versions)):
        app.add_api_route(path, _route(backend, handle, False), methods=['GET'])
    return app


def _route(backend: Backend, handle: Callable[..., dict], with_body: bool) -> Callable:
    async def route(request: Request) -> Any:
        return await _answer(backend, request, handle, with_body)
    return route
