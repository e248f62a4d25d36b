"""The HTTP face of ``BrokerService``: jfjoch_broker's REST paths on a Starlette app.

Paths, methods, query parameters and bodies are those of ``jfjoch_client.DefaultApi``
(jfjoch-client 1.0.0rc179). Handlers only translate HTTP: parse the query and body
(``bodies``), call the service, encode the answer with the client's own model. A refusal
(``BrokerError``) becomes its status code and an ``ErrorMessage``; an unexpected exception
becomes 500 with an ``ErrorMessage`` and a logged traceback, and the server goes on.
Commands that wait (``/start``, the two waits) and those that read pixels run in worker
threads; the rest answer on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

import anyio
import anyio.to_thread
from jfjoch_client.models import DatasetSettings, DetectorSelection, ErrorMessage
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from jfsim import __version__
from jfsim.serve.bodies import parse_body
from jfsim.serve.errors import BadRequest, BrokerError, NotEmulated
from jfsim.serve.image_buffer import LATEST
from jfsim.serve.service import BrokerService
from jfsim.serve.settings import SECTIONS
from jfsim.serve.tiff import tiff_bytes

__all__ = ["NOT_EMULATED", "create_app"]

log = logging.getLogger(__name__)

#: Threads of their own for ``/wait_till_done`` and ``/wait_until_running``: a client may
#: wait minutes, and waiting clients must not hold every thread the other requests need.
WAIT_THREADS = 64
#: ``/wait_till_done`` and ``/wait_until_running`` without ``timeout``; the client's bounds.
DEFAULT_WAIT_S = 60
MAX_WAIT_S = 3600

#: Paths of jfjoch_client.DefaultApi that jfsim has no part for: (methods, what is missing).
NOT_EMULATED: dict[str, tuple[tuple[str, ...], str]] = {
    "/pedestal": (("POST",), "pedestal collection (a simulated detector has no dark current)"),
    "/fpga_status": (("GET",), "FPGA status (no FPGA)"),
    "/image_pusher/status": (("GET",), "image pusher status"),
    "/statistics/calibration": (("GET",), "calibration statistics (no pedestal)"),
    "/preview/pedestal.tiff": (("GET",), "pedestal images"),
    "/preview/plot.bin": (("GET",), "binary plots (use /preview/plot)"),
    "/image_buffer/image.jpeg": (("GET",), "JPEG previews (use /image_buffer/image.tiff)"),
    "/config/bragg_integration": (("GET", "PUT"), "Bragg integration settings"),
    "/config/dark_mask": (("GET", "PUT"), "dark-mask collection"),
    "/config/image_format": (("GET", "PUT"), "image format conversion"),
    "/config/image_format/conversion": (("POST",), "image format conversion"),
    "/config/image_format/raw": (("POST",), "raw image format"),
    "/config/internal_generator_image": (("PUT",), "the FPGA frame generator"),
    "/config/internal_generator_image.tiff": (("PUT",), "the FPGA frame generator"),
    "/config/mask": (("GET",), "the detector mask download"),
    "/config/mask.tiff": (("GET",), "the detector mask download"),
    "/config/user_mask": (("GET", "PUT"), "user masks"),
    "/config/user_mask.tiff": (("GET", "PUT"), "user masks"),
    "/config/rugnux": (("GET", "PUT"), "rugnux live analysis"),
    "/config/rugnux/model": (("PUT", "DELETE"), "rugnux live analysis"),
    "/rugnux/status": (("GET",), "rugnux live analysis"),
    "/rugnux/model.cif": (("GET",), "rugnux live analysis"),
    "/rugnux/map.ccp4": (("GET",), "rugnux live analysis"),
    "/result/scan": (("GET",), "scan results"),
    "/live/events": (("GET",), "the live event stream"),
    "/xfel/event_code": (("GET",), "XFEL event codes (not a pulsed source)"),
    "/xfel/pulse_id": (("GET",), "XFEL pulse ids (not a pulsed source)"),
}

Handler = Callable[[Request], Awaitable[Response]]


class _GeneratedModel(Protocol):
    """What jfjoch-client's generated models add to pydantic's: their own JSON."""

    def to_json(self) -> str: ...


def _json(model: _GeneratedModel) -> Response:
    return Response(model.to_json(), media_type="application/json")


def _ok() -> Response:
    return Response(status_code=200)


def _query_int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name}: expected an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"within {low}..{high}"
        raise BadRequest(f"query parameter {name}: must be {bounds}, got {value}")
    return value


def _query_bool(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise BadRequest(f"query parameter {name}: expected true or false, got {text!r}")
    return text in ("true", "1")


def _query_float(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise BadRequest(f"query parameter {name}: expected a number, got {text!r}") from None


def create_app(service: BrokerService) -> Starlette:
    """The ASGI application serving ``service``; closing it closes the service."""

    simple_commands: dict[str, Callable[[], None]] = {
        "/initialize": service.initialize,
        "/deactivate": service.deactivate,
        "/cancel": service.cancel,
        "/trigger": lambda: None,  # images flow at once; a soft trigger changes nothing
        "/image_buffer/clear": service.clear_image_buffer,
    }
    waits: dict[str, Callable[[float], None]] = {
        "/wait_till_done": service.wait_till_done,
        "/wait_until_running": service.wait_until_running,
    }

    async def simple_command(request: Request) -> Response:
        simple_commands[request.url.path]()
        return _ok()

    async def start(request: Request) -> Response:
        settings = parse_body(DatasetSettings, await request.body())
        await run_in_threadpool(service.start, settings)
        return _ok()

    wait_threads: list[anyio.CapacityLimiter] = []  # made in the event loop, on first use

    async def wait(request: Request) -> Response:
        timeout_s = _query_int(request, "timeout", DEFAULT_WAIT_S, 0, MAX_WAIT_S)
        if not wait_threads:
            wait_threads.append(anyio.CapacityLimiter(WAIT_THREADS))
        await anyio.to_thread.run_sync(waits[request.url.path], timeout_s, limiter=wait_threads[0])
        return _ok()

    async def status(request: Request) -> Response:
        return _json(service.status())

    async def version(request: Request) -> Response:
        return PlainTextResponse(f"jfsim {__version__}")

    async def detector_status(request: Request) -> Response:
        return _json(service.detector_status())

    async def statistics(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        return _json(await run_in_threadpool(service.statistics, authorization))

    async def data_collection(request: Request) -> Response:
        service.authorize(request.headers.get("authorization"))
        return _json(await run_in_threadpool(service.measurement))

    async def config(request: Request) -> Response:
        name = request.url.path.removeprefix("/config/")
        if request.method == "GET":
            # every /config section is a jfjoch-client model (SECTIONS)
            return _json(cast(_GeneratedModel, service.get_config(name)))
        service.put_config(name, parse_body(SECTIONS[name].model, await request.body()))
        return _ok()

    async def select_detector(request: Request) -> Response:
        if request.method == "GET":
            return _json(service.detector_list())
        service.select_detector(parse_body(DetectorSelection, await request.body()))
        return _ok()

    async def image_buffer(request: Request) -> Response:
        path = request.url.path.removeprefix("/image_buffer/")
        if path == "status":
            return _json(service.buffer.status())
        service.authorize(request.headers.get("authorization"))
        if path == "start.cbor":
            return Response(service.buffer.start_cbor(), media_type="application/cbor")
        image_id = _query_int(request, "id", LATEST, -2, None)
        if path == "image.cbor":
            data = await run_in_threadpool(service.buffer.image_cbor, image_id)
            return Response(data, media_type="application/cbor")
        pixels = await run_in_threadpool(service.buffer.image_pixels, image_id)
        return Response(tiff_bytes(pixels), media_type="image/tiff")

    async def plot(request: Request) -> Response:
        service.authorize(request.headers.get("authorization"))
        kind = request.query_params.get("type")
        if not kind:
            raise BadRequest("query parameter type: missing; e.g. type=spot_count")
        plots = await run_in_threadpool(
            lambda: service.plots(
                kind,
                binning=_query_int(request, "binning", 0, 0, None),
                fill=_query_float(request, "fill"),
                experimental_coord=_query_bool(request, "experimental_coord"),
            )
        )
        return _json(plots)

    async def not_emulated(request: Request) -> Response:
        _, what = NOT_EMULATED[request.url.path]
        raise NotEmulated(
            f"{request.method} {request.url.path}: jfsim does not emulate {what}; "
            "see docs/serve.md for what it serves"
        )

    routes = [Route(path, simple_command, methods=["POST"]) for path in simple_commands]
    routes += [Route(path, wait, methods=["POST"]) for path in waits]
    routes.append(Route("/start", start, methods=["POST"]))
    routes += [
        Route("/status", status, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/detector/status", detector_status, methods=["GET"]),
        Route("/statistics", statistics, methods=["GET"]),
        Route("/statistics/data_collection", data_collection, methods=["GET"]),
        Route("/config/select_detector", select_detector, methods=["GET", "PUT"]),
        Route("/preview/plot", plot, methods=["GET"]),
        Route("/image_buffer/status", image_buffer, methods=["GET"]),
        Route("/image_buffer/start.cbor", image_buffer, methods=["GET"]),
        Route("/image_buffer/image.cbor", image_buffer, methods=["GET"]),
        Route("/image_buffer/image.tiff", image_buffer, methods=["GET"]),
    ]
    routes += [Route(f"/config/{name}", config, methods=["GET", "PUT"]) for name in SECTIONS]
    routes += [
        Route(path, not_emulated, methods=list(methods))
        for path, (methods, _) in NOT_EMULATED.items()
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await run_in_threadpool(service.close)

    return Starlette(
        routes=routes,
        exception_handlers={
            BrokerError: _refusal,
            HTTPException: _no_such_endpoint,
            Exception: _crash,
        },
        lifespan=lifespan,
    )


async def _refusal(request: Request, error: Exception) -> Response:
    assert isinstance(error, BrokerError)
    body = ErrorMessage(msg=error.msg, reason=error.reason).to_json()
    return Response(body, status_code=error.status, media_type="application/json")


async def _no_such_endpoint(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (an unknown path: 404, a method a path does not take: 405)
    as an ``ErrorMessage``, like every other refusal."""
    assert isinstance(error, HTTPException)
    what = "no such endpoint" if error.status_code == 404 else error.detail
    message = f"{request.method} {request.url.path}: {what}; see docs/serve.md for the API"
    body = ErrorMessage(msg=message, reason="Other").to_json()
    return Response(
        body, status_code=error.status_code, headers=error.headers, media_type="application/json"
    )


async def _crash(request: Request, error: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    body = ErrorMessage(msg=f"internal error in jfsim: {error!r}", reason="Other").to_json()
    return Response(body, status_code=500, media_type="application/json")
