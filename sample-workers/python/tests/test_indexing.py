"""Worker indexing: triggers declared on registration reach the host as the
metadata response's ``raw_bindings``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from fnhost_worker import AuthLevel, Context, FunctionApp, HttpTrigger, Input, TimerInfo, TimerTrigger
from fnhost_worker._proto import pb
from fnhost_worker.dispatcher import Dispatcher

ITEM_TRIGGER = (
    '{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],'
    '"authLevel":"anonymous","route":"items/{id:int}"}'
)
HTTP_RETURN = '{"type":"http","direction":"out","name":"$return"}'
MANUAL_TRIGGER = '{"type":"manualTrigger","direction":"in","name":"input"}'
TICK_TRIGGER = '{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 * * * * *","runOnStartup":false}'


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def sample_app(**options: object) -> FunctionApp:
    app = FunctionApp(worker_indexing=True, **options)  # type: ignore[arg-type]

    @app.route(route="items/{id:int}", methods=["GET"], auth_level=AuthLevel.ANONYMOUS)
    def item(ctx: Context, input: Input) -> str:
        return "item"

    @app.route()
    def hello(ctx: Context, input: Input) -> str:
        return "hello"

    @app.function()
    def job(ctx: Context, input: Input) -> None:
        return None

    @app.function(name="initializer")
    def init(ctx: Context, input: Input) -> None:
        return None

    return app


def metadata(d: Dispatcher) -> pb.FunctionMetadataResponse:
    reply = d.handle_message(pb.StreamingMessage(functions_metadata_request=pb.FunctionsMetadataRequest()))
    return reply.replies[0].function_metadata_response


def dispatcher_for(app: FunctionApp, pool: ThreadPoolExecutor, worker_indexing: bool = True) -> Dispatcher:
    return Dispatcher(app.functions, pool, triggers=app.triggers, worker_indexing=worker_indexing)


async def test_an_http_route_and_a_manual_function_are_listed_with_azure_raw_bindings(
    pool: ThreadPoolExecutor,
) -> None:
    resp = metadata(dispatcher_for(sample_app(), pool))
    assert resp.result.status == pb.StatusResult.Success
    assert resp.use_default_metadata_indexing is False
    by_name = {m.name: m for m in resp.function_metadata_results}
    assert sorted(by_name) == ["hello", "item", "job"]  # lifecycle hooks are not listed
    assert list(by_name["item"].raw_bindings) == [ITEM_TRIGGER, HTTP_RETURN]
    assert list(by_name["job"].raw_bindings) == [MANUAL_TRIGGER]


async def test_a_route_without_options_has_the_apps_auth_level_every_method_and_no_route(
    pool: ThreadPoolExecutor,
) -> None:
    resp = metadata(dispatcher_for(sample_app(http_auth_level="admin"), pool))
    hello = next(m for m in resp.function_metadata_results if m.name == "hello")
    assert list(hello.raw_bindings) == [
        '{"type":"httpTrigger","direction":"in","name":"req","authLevel":"admin"}',
        HTTP_RETURN,
    ]


async def test_metadata_fills_bindings_ids_and_worker_indexed(pool: ThreadPoolExecutor) -> None:
    resp = metadata(dispatcher_for(sample_app(), pool))
    by_name = {m.name: m for m in resp.function_metadata_results}
    item = by_name["item"]
    assert item.function_id == "item"
    assert item.language == "python"
    assert item.is_proxy is False
    assert dict(item.properties) == {"worker_indexed": "True"}
    assert item.status.status == pb.StatusResult.Success
    assert item.bindings["req"].type == "httpTrigger"
    assert item.bindings["req"].direction == pb.BindingInfo.Direction.Value("in")
    assert item.bindings["$return"].type == "http"
    assert item.bindings["$return"].direction == pb.BindingInfo.Direction.Value("out")
    assert by_name["job"].bindings["input"].type == "manualTrigger"


async def test_worker_indexing_is_advertised_only_when_on(pool: ThreadPoolExecutor) -> None:
    init = pb.StreamingMessage(worker_init_request=pb.WorkerInitRequest(host_version="1"))
    on = dispatcher_for(sample_app(), pool).handle_message(init)
    assert on.replies[0].worker_init_response.capabilities["WorkerIndexing"] == "true"
    off = dispatcher_for(sample_app(), pool, worker_indexing=False)
    assert "WorkerIndexing" not in off.handle_message(init).replies[0].worker_init_response.capabilities
    resp = metadata(off)
    assert resp.use_default_metadata_indexing is True
    assert len(resp.function_metadata_results) == 0


async def test_a_route_function_is_invoked_like_any_other(pool: ThreadPoolExecutor) -> None:
    app = sample_app()
    d = dispatcher_for(app, pool)
    load = pb.FunctionLoadRequest(function_id="item", metadata=pb.RpcFunctionMetadata(name="item"))
    loaded = d.handle_message(pb.StreamingMessage(function_load_request=load)).replies[0]
    assert loaded.function_load_response.result.status == pb.StatusResult.Success
    request = pb.InvocationRequest(invocation_id="i1", function_id="item")
    d.handle_message(pb.StreamingMessage(invocation_request=request))
    while True:
        msg = await asyncio.wait_for(d.outbox.get(), 5)
        if msg.WhichOneof("content") == "invocation_response":
            break
    assert msg.invocation_response.return_value.string == "item"


def test_triggers_validate_their_options() -> None:
    with pytest.raises(ValueError, match="'system'"):
        HttpTrigger(auth_level="system")
    with pytest.raises(TypeError):
        HttpTrigger(methods="GET")
    assert HttpTrigger(methods=["GET", "Post"]).methods == ("get", "post")
    assert HttpTrigger(auth_level="Anonymous").auth_level is AuthLevel.ANONYMOUS


async def test_a_timer_is_listed_with_its_schedule_and_run_on_startup(pool: ThreadPoolExecutor) -> None:
    app = FunctionApp(worker_indexing=True)

    @app.timer("tick", schedule="0 * * * * *", run_on_startup=False)
    def tick_handler(ctx: Context, input: Input) -> None:
        return None

    @app.timer(schedule="00:05:00", run_on_startup=True)
    def every_five_minutes(ctx: Context, input: Input) -> None:
        return None

    @app.function(name="hourly", trigger=TimerTrigger("0 0 * * * *"))
    def hourly_handler(ctx: Context, input: Input) -> None:
        return None

    resp = metadata(dispatcher_for(app, pool))
    by_name = {m.name: m for m in resp.function_metadata_results}
    assert sorted(by_name) == ["every_five_minutes", "hourly", "tick"]
    assert list(by_name["tick"].raw_bindings) == [TICK_TRIGGER]
    assert list(by_name["every_five_minutes"].raw_bindings) == [
        '{"type":"timerTrigger","direction":"in","name":"timer","schedule":"00:05:00","runOnStartup":true}'
    ]
    assert list(by_name["hourly"].raw_bindings) == [
        '{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 * * * *","runOnStartup":false}'
    ]
    tick = by_name["tick"]
    assert tick.bindings["timer"].type == "timerTrigger"
    assert tick.bindings["timer"].direction == pb.BindingInfo.Direction.Value("in")
    assert dict(tick.properties) == {"worker_indexed": "True"}
    assert app.functions["tick"] is tick_handler


def test_timer_triggers_validate_their_options() -> None:
    with pytest.raises(ValueError, match="schedule"):
        TimerTrigger("")
    with pytest.raises(TypeError, match="run_on_startup"):
        TimerTrigger("0 * * * * *", run_on_startup="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FunctionApp().timer("tick")  # type: ignore[call-arg]  # schedule is required


def test_input_timer_parses_the_timer_info() -> None:
    info = (
        '{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2024-05-01T12:00:00Z",'
        '"Next":"2024-05-01T12:01:00Z","LastUpdated":"2024-05-01T12:00:00.5Z"},"IsPastDue":true}'
    )
    timer = Input(pb.TypedData(json=info)).timer()
    assert timer == TimerInfo(
        next="2024-05-01T12:01:00Z",
        last="2024-05-01T12:00:00Z",
        last_updated="2024-05-01T12:00:00.5Z",
        past_due=True,
        adjust_for_dst=True,
    )
    sparse = Input(pb.TypedData(json='{"ScheduleStatus":null}')).timer()
    assert (sparse.next, sparse.last, sparse.past_due, sparse.adjust_for_dst) == (None, None, False, None)
    with pytest.raises(ValueError):
        Input.from_text("[1]").timer()
    with pytest.raises(ValueError):
        Input.from_text("not json").timer()
