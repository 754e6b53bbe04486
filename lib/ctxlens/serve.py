"""`ctxlens serve`: the classroom server. The models behind Ray Serve, one deployment each.

    Gateway (HTTP ingress, no CPU of its own)
      /healthz  /readyz  /v1/models  /v1/stats
      /v1/{analyze,fetch,unembed,explain,tokenizer}?model=NAME  ->  that model's deployment
    ModelDeployment (one per model: its CPUs, or a fraction of a GPU)
      requests of every session that arrive within a few milliseconds form one forward
      (`@serve.batch`); records stay in the replica's cache, views fetch slices of them

Bodies are the wire format of `backends/wire.py`; errors are JSON {"error", "message"}
(400: the request; 404: an unknown model; 503: not ready). The app uses it when
CTXLENS_SERVER is set (`backends/remote.py`). Ray is an optional extra: imported here only.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import threading

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .backends import wire
from .errors import CtxlensError
from .served import BATCH_SIZE, ModelService

# How long a lone request waits for others to join its forward: a classroom's requests arrive
# spread over tens of milliseconds: on 2 CPU cores a 10 ms wait ran thirty sessions in batches
# of 1-8, a 60 ms wait in batches of 14-21 (bench/serve_bench.py). CTXLENS_BATCH_WAIT_MS tunes it.
BATCH_WAIT_S = float(os.environ.get("CTXLENS_BATCH_WAIT_MS", "50")) / 1000
OPERATIONS = ("analyze", "fetch", "unembed", "explain", "tokenizer")


def _answers(operation):
    """A deployment's HTTP operation: (200, its reply), or for any failure (400 for ours, 500
    for the rest, the error as JSON) that the client raises again as the same class."""
    @functools.wraps(operation)
    async def answered(self, body: bytes) -> tuple[int, bytes]:
        try:
            return 200, await operation(self, body)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the client's message
            status = 400 if isinstance(exc, CtxlensError) else 500
            return status, json.dumps({"error": type(exc).__name__, "message": str(exc)}).encode()

    return answered


@serve.deployment(max_ongoing_requests=256)
class ModelDeployment:
    """One model: `info` and `stats` for the Gateway, and the HTTP OPERATIONS."""

    def __init__(self, name: str, device: str | None, threads: int):
        import torch

        torch.set_num_threads(threads)  # Ray gives an actor one thread per CPU it reserved
        self.service = ModelService(name, device)

    async def info(self) -> dict:
        return self.service.info()

    async def stats(self) -> dict:
        return self.service.stats()

    @_answers
    async def analyze(self, body: bytes) -> bytes:
        meta, _ = wire.unpack(body)
        records = await asyncio.gather(*(self._record(r) for r in meta["inputs"]))
        return self.service.analyze_reply(records)

    @_answers
    async def fetch(self, body: bytes) -> bytes:
        meta, _ = wire.unpack(body)
        record = await self._record(meta["input"])
        return await asyncio.to_thread(self.service.fetch_reply, record, meta)

    @_answers
    async def unembed(self, body: bytes) -> bytes:
        return await asyncio.to_thread(self.service.unembed_reply, body)

    @_answers
    async def explain(self, body: bytes) -> bytes:
        # many forwards and backwards of one input: not batched with other requests
        return await asyncio.to_thread(self.service.explain_reply, body)

    @_answers
    async def tokenizer(self, body: bytes) -> bytes:
        return self.service.tokenizer_reply()

    async def _record(self, request: dict):
        record = self.service.cached(request)  # a hit never waits for a batch
        if record is None:
            record = await self._batched(request)
        if isinstance(record, Exception):
            raise record
        return record

    @serve.batch(max_batch_size=BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _batched(self, requests: list[dict]) -> list:
        return await asyncio.to_thread(self.service.records, requests)


@serve.deployment(max_ongoing_requests=4096, ray_actor_options={"num_cpus": 0})
class Gateway:
    """The HTTP ingress: health, the list of models, and each request to its model."""

    def __init__(self, names: list[str], *models):
        self.models = dict(zip(names, models))

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if path == "/healthz":
            return PlainTextResponse("ok")
        if path == "/readyz":
            return await self._ready()
        if path == "/v1/models":
            infos = await asyncio.gather(*(m.info.remote() for m in self.models.values()))
            return JSONResponse({"models": infos})
        if path == "/v1/stats":
            stats = await asyncio.gather(*(m.stats.remote() for m in self.models.values()))
            return JSONResponse(dict(zip(self.models, stats)))
        operation = path.removeprefix("/v1/")
        if operation not in OPERATIONS:
            return JSONResponse({"error": "NotFound", "message": f"no such path {path}"}, 404)
        name = request.query_params.get("model", "")
        if name not in self.models:
            message = f"this server does not serve {name!r}; it serves {', '.join(self.models)}"
            return JSONResponse({"error": "ModelUnavailable", "message": message}, 404)
        status, body = await getattr(self.models[name], operation).remote(await request.body())
        media = wire.MEDIA_TYPE if status == 200 else "application/json"
        return Response(body, status_code=status, media_type=media)

    async def _ready(self) -> Response:
        """200 once every model answers; 503 naming the ones that do not (yet)."""
        async def answers(handle) -> bool:
            try:
                await asyncio.wait_for(handle.info.remote(), timeout=2)
                return True
            except Exception:  # noqa: BLE001 - not ready, whatever the reason
                return False

        ready = dict(zip(self.models, await asyncio.gather(*map(answers, self.models.values()))))
        return JSONResponse({"ready": all(ready.values()), "models": ready}, 200 if all(ready.values()) else 503)


def build(models: list[str], device: str | None = None, cpus_per_model: float = 0.5,
          gpus_per_model: float | None = None, threads: int | None = None, replicas: int = 1):
    """The Serve application: a Gateway over one deployment per model, `replicas` each. Without
    a GPU fraction given, the models share this machine's GPU (Ray hides a GPU from an actor
    that asks none). A replica keeps its own records: a view's fetch that lands on another
    replica recomputes the record there (correct, but a forward more), so prefer one replica
    with big batches per device, and more replicas only for more devices."""
    import torch

    if gpus_per_model is None:
        gpus_per_model = 1 / len(models) if torch.cuda.is_available() else 0.0
    threads = threads or max(1, (os.cpu_count() or 1))  # models share the cores, as in the app
    resources = {"num_cpus": cpus_per_model, "num_gpus": gpus_per_model}
    deployments = [
        ModelDeployment.options(name=f"model-{i}", num_replicas=replicas, ray_actor_options=resources)
        .bind(name, device, threads)
        for i, name in enumerate(models)
    ]
    return Gateway.bind(list(models), *deployments)


def run_server(models: list[str], *, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
               device: str | None = None, cpus_per_model: float = 0.5, gpus_per_model: float | None = None,
               threads: int | None = None, replicas: int = 1, ready=print) -> None:
    """Start Ray (local, or join `address`), serve the models until SIGINT/SIGTERM."""
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    app = build(models, device, cpus_per_model, gpus_per_model, threads, replicas)
    serve.run(app, name="ctxlens", route_prefix="/")
    ready(f"serving {', '.join(models)} on http://{host}:{port} (CTXLENS_SERVER=http://{host}:{port})")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):  # wakes for the signal handler
        pass
    serve.shutdown()
    ray.shutdown()
