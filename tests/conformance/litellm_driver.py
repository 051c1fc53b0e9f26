#!/usr/bin/env python3
"""Drive the real ``litellm.Router`` through the cases of ``litellm_cases.toml`` and write what happened.

    target/conformance-venv/bin/python tests/conformance/litellm_driver.py \
        --cases tests/conformance/litellm_cases.toml --out target/conformance/litellm.json [--case NAME]

How it works (README.md in this folder says more):

- Deployments are mocks in this process: a ``litellm.CustomLLM`` registered as provider ``mock``
  through ``litellm.custom_provider_map``; deployment ``<id>`` is model ``mock/<id>``. Every call the
  router makes to a deployment reaches the mock, which draws its outcome from a ``random.Random``
  seeded by (case seed, deployment id, that deployment's call index), waits the case's latency on
  the virtual clock and answers or raises the exception LiteLLM's own providers raise.
- The clock is virtual for the whole process: ``vclock.c`` (built by setup.sh, or here when
  missing) is LD_PRELOADed and replaces glibc's ``clock_gettime``, ``gettimeofday`` and ``time``,
  which both CPython (time.time, time.monotonic, time.perf_counter, datetime.now, asyncio's loop
  clock) and LiteLLM's native router core (``_native.abi3.so`` imports ``clock_gettime``) read.
  The event loop below moves the clock to the next timer whenever nothing is runnable, so sleeps,
  cooldowns and minute windows pass in no real time.
- litellm is imported once; each case runs in a child forked from that process (so every case
  starts from the same state and the same virtual instant, whether run alone or in the suite),
  two at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import contextvars
import ctypes
import functools
import json
import math
import os
import random
import selectors
import subprocess
import sys
import threading
import time
import tomllib
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VCLOCK_C = HERE / "vclock.c"
VCLOCK_SO_DEFAULT = REPO / "target" / "conformance-venv" / "vclock.so"

# Virtual time starts here (UTC), before the router is built; each case's first arrival is the
# next whole UTC minute after the router is built (usage counters are per UTC calendar minute).
VIRTUAL_EPOCH_S = 1_767_225_600 - 30  # 2025-12-31T23:59:30Z
MONO_START_S = 1_000_000

_DEBUG = bool(os.environ.get("ROUTESIM_DRIVER_DEBUG"))

ERROR_KINDS = ("server_error", "rate_limit", "overloaded", "timeout", "auth")


# --------------------------------------------------------------------------------------------
# the virtual clock


def _ensure_vclock() -> Path:
    so = Path(os.environ.get("ROUTESIM_VCLOCK_SO", VCLOCK_SO_DEFAULT))
    if so.exists() and so.stat().st_mtime >= VCLOCK_C.stat().st_mtime:
        return so
    so.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(so), str(VCLOCK_C), "-ldl"], check=True)
    return so


def _reexec_with_vclock() -> None:
    """Restart this process with the clock shim preloaded (and a fixed hash seed)."""
    if os.environ.get("ROUTESIM_VCLOCK_ACTIVE") == "1":
        return
    so = _ensure_vclock()
    env = dict(os.environ)
    env["LD_PRELOAD"] = f"{so}:{env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else str(so)
    env["ROUTESIM_VCLOCK_ACTIVE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("LITELLM_LOG", "CRITICAL")
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


class VClock:
    def __init__(self) -> None:
        lib = ctypes.CDLL(None)
        try:
            lib.vclock_enable
        except AttributeError:
            raise SystemExit("vclock.so is not preloaded: run through litellm_driver.py itself") from None
        lib.vclock_enable.argtypes = [ctypes.c_int64, ctypes.c_int64]
        lib.vclock_advance_ns.argtypes = [ctypes.c_int64]
        lib.vclock_now_ns.restype = ctypes.c_int64
        lib.vclock_real_ns.restype = ctypes.c_int64
        self._lib = lib
        self.real_wait_ns = 0
        self.real_waits = 0

    def enable(self, start_s: int, mono_start_s: int) -> None:
        self._lib.vclock_enable(start_s * 1_000_000_000, mono_start_s * 1_000_000_000)

    def advance_ns(self, ns: int) -> None:
        self._lib.vclock_advance_ns(ns)

    def real_s(self) -> float:
        """Real (not virtual) monotonic seconds."""
        return self._lib.vclock_real_ns() / 1e9


class _VirtualSelector(selectors.DefaultSelector):
    """Selects without waiting; when nothing is ready and nothing runs in a thread, moves the
    virtual clock to the loop's next timer instead of sleeping."""

    def __init__(self, clock: VClock) -> None:
        super().__init__()
        self.clock = clock
        self.loop: VirtualLoop | None = None

    def select(self, timeout=None):  # noqa: ANN001
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        loop = self.loop
        if (loop is not None and loop.threads_in_flight > 0) or timeout is None:
            # Work in an executor thread, or nothing scheduled (only an outside event can wake the
            # loop): wait in real time, without moving the clock.
            if _DEBUG:
                print(
                    f"vclock real wait: in_flight={loop.threads_in_flight if loop else None} timeout={timeout} "
                    f"threads={[t.name for t in threading.enumerate()]}",
                    file=sys.stderr,
                )
            t = self.clock.real_s()
            ready = super().select(0.05)
            self.clock.real_wait_ns += int((self.clock.real_s() - t) * 1e9)
            self.clock.real_waits += 1
            return ready
        self.clock.advance_ns(max(1, math.ceil(timeout * 1e9)))
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VClock) -> None:
        selector = _VirtualSelector(clock)
        super().__init__(selector)
        selector.loop = self
        self.threads_in_flight = 0
        self._serial_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.untracked_wakeups = 0

    @contextlib.contextmanager
    def native_call(self):
        """Around an await of a future the native extension completes on its own threads (the
        cooldown store's async_put / async_increment_allowed_fails answer on LiteLLM's tokio
        runtime even without Redis): the clock must not move until it is answered."""
        self.threads_in_flight += 1
        try:
            yield
        finally:
            self.threads_in_flight -= 1

    def call_soon_threadsafe(self, callback, *args, context=None):  # noqa: ANN001
        # A wake-up from a thread the loop did not wait for: its timing is real, not virtual.
        # Counted and reported (stderr), since the run may then not be reproducible.
        if threading.current_thread() is not threading.main_thread() and not self.threads_in_flight:
            self.untracked_wakeups += 1
        if _DEBUG:
            import traceback as tb

            print(f"vclock call_soon_threadsafe: {callback!r} {args!r:.200}", file=sys.stderr)
            tb.print_stack(limit=6, file=sys.stderr)
        return super().call_soon_threadsafe(callback, *args, context=context)

    def run_in_executor(self, executor, func, *args):  # noqa: ANN001
        """Run ``func`` in a worker thread as asyncio does, but wait for it here, so the loop does
        nothing else meanwhile. ``litellm.acompletion`` runs ``completion()`` (the attempt's set-up,
        including the pre-call callbacks least-busy counts with) this way: with real threads the
        order in which two attempts started at the same virtual instant finish their set-up, and
        so which of them a deployment sees first, was a race."""
        if _DEBUG:
            print(f"vclock run_in_executor: {getattr(func, '__qualname__', type(func).__name__)}", file=sys.stderr)
        if executor is None:
            if self._serial_executor is None:
                self._serial_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            executor = self._serial_executor
        work = executor.submit(func, *args)
        concurrent.futures.wait([work], timeout=120)
        if not work.done():
            # Not finished in two real minutes: hand it back as a pending future, clock held.
            self.threads_in_flight += 1
            future = asyncio.wrap_future(work, loop=self)

            def done(_f: object) -> None:
                self.threads_in_flight -= 1

            future.add_done_callback(done)
            return future
        future = self.create_future()
        error = work.exception()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(work.result())
        return future


# --------------------------------------------------------------------------------------------
# one case


REQUEST: contextvars.ContextVar[int | None] = contextvars.ContextVar("routesim_request", default=None)


class Recorder:
    def __init__(self, t0_mono: float) -> None:
        self.t0 = t0_mono
        self.attempts: list[dict] = []
        self.requests: list[dict] = []
        self.cooldowns: list[dict] = []
        self.sleeps: list[dict] = []
        self.attempt_counter: dict[int, int] = {}

    def ms(self, mono: float | None = None) -> float:
        return round(((time.monotonic() if mono is None else mono) - self.t0) * 1000.0, 3)

    def wall_ms(self, wall_s: float, wall_t0: float) -> float:
        return round((wall_s - wall_t0) * 1000.0, 3)


def _status_response(status: int, headers: dict[str, str] | None = None):
    import httpx

    request = httpx.Request("POST", "https://mock.invalid/v1/chat/completions")
    return httpx.Response(status_code=status, headers=headers or {}, request=request)


def _error_for(kind: str, dep: dict, model: str) -> Exception:
    import litellm

    message = f"mock {dep['id']}: {kind}"
    if kind == "server_error":
        return litellm.InternalServerError(
            message=message, llm_provider="mock", model=model, response=_status_response(500)
        )
    if kind == "rate_limit":
        headers = {}
        if dep.get("retry_after_s") is not None:
            headers["retry-after"] = str(dep["retry_after_s"])
        return litellm.RateLimitError(
            message=message, llm_provider="mock", model=model, response=_status_response(429, headers)
        )
    if kind == "overloaded":
        # litellm_core_utils/exception_mapping_utils.py:_map_anthropic_exception maps an Anthropic
        # 529 to InternalServerError(provider_status_code=529).
        return litellm.InternalServerError(
            message=message,
            llm_provider="anthropic",
            model=model,
            response=_status_response(529),
            provider_status_code=529,
        )
    if kind == "timeout":
        return litellm.Timeout(message=message, model=model, llm_provider="mock")
    if kind == "auth":
        return litellm.AuthenticationError(
            message=message, llm_provider="mock", model=model, response=_status_response(401)
        )
    raise ValueError(f"unknown error kind {kind!r}")


def _outcome_of_error(error: BaseException) -> str:
    import litellm

    text = str(error)
    names = [cls.__name__ for cls in type(error).__mro__]
    if "RouterRateLimitError" in names or "RouterRateLimitErrorBasic" in names or "No deployments available" in text:
        return "no_deployments_available"
    if isinstance(error, litellm.InternalServerError) and getattr(error, "provider_status_code", None) == 529:
        return "overloaded"
    if isinstance(error, litellm.Timeout):
        return "timeout"
    if isinstance(error, litellm.AuthenticationError):
        return "auth_error"
    if isinstance(error, litellm.RateLimitError):
        return "rate_limited"
    if isinstance(error, litellm.InternalServerError):
        return "server_error"
    status = getattr(error, "status_code", None)
    by_status = {500: "server_error", 429: "rate_limited", 529: "overloaded", 408: "timeout", 401: "auth_error"}
    if status in by_status:
        return by_status[status]
    return f"other:{type(error).__name__}"


def _draw(case: dict, dep: dict, index: int) -> str:
    rng = random.Random(f"{case.get('seed', 0)}/{dep['id']}/{index}")
    u = rng.random()
    acc = 0.0
    errors = dep.get("errors", {}) or {}
    for kind in ERROR_KINDS:
        p = float(errors.get(kind, 0.0))
        acc += p
        if u < acc:
            return kind
    return "ok"


def _prompt_for(input_tokens: int) -> list[dict]:
    """A one-message prompt whose token count, as ``litellm.token_counter`` counts it, is input_tokens."""
    import litellm

    def count(n: int) -> int:
        return litellm.token_counter(model="mock/x", messages=[{"role": "user", "content": " ".join(["hi"] * n)}])

    n = max(1, input_tokens - (count(1) - 1))
    for _ in range(20):
        c = count(n)
        if c == input_tokens:
            break
        n += input_tokens - c
        n = max(1, n)
    return [{"role": "user", "content": " ".join(["hi"] * n)}]


def cooldown_episodes(writes: list[dict]) -> list[dict]:
    """The router's cooldown writes as episodes: a write while the deployment's entry is still
    live replaces it (the store keeps the newest write), so it extends that episode to its own
    until_ms; a write after the entry expired starts a new episode."""
    live: dict[str, dict] = {}
    episodes: list[dict] = []
    for w in sorted(writes, key=lambda w: (w["written_ms"], w["deployment"])):
        dep = w["deployment"]
        current = live.get(dep)
        if current is not None and w["written_ms"] < current["until_ms"]:
            current["until_ms"] = w["until_ms"]
            current["writes"] += 1
            continue
        current = {"deployment": dep, "start_ms": w["start_ms"], "until_ms": w["until_ms"], "writes": 1}
        live[dep] = current
        episodes.append(current)
    return episodes


def run_case(case: dict, trace_cache: bool = False) -> dict:
    import litellm
    from litellm import CustomLLM
    from litellm.redis.stores.router_cooldowns import RouterCooldownStore
    from litellm.router_python_host import PythonHost
    from litellm.types.utils import ModelResponse

    random.seed(f"routesim-case/{case['name']}/{case.get('seed', 0)}")  # LiteLLM's own jitter and shuffles
    clock = VClock()
    loop = VirtualLoop(clock)
    asyncio.set_event_loop(loop)

    # litellm_core_utils/asyncify.py hands work (the streamed response's assembly, for one) to
    # anyio's worker threads, which do not go through loop.run_in_executor: send it there too.
    import anyio.to_thread

    async def run_sync(func, *args, **_options):  # noqa: ANN001, ANN003
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(func, *args))

    anyio.to_thread.run_sync = run_sync

    deployments = {d["id"]: d for d in case["deployments"]}
    input_tokens = int(case.get("input_tokens", 100))
    output_tokens = int(case.get("output_tokens", 20))
    stream = bool(case.get("stream", False))
    rec: Recorder | None = None
    wall_t0 = 0.0
    calls_per_dep: dict[str, int] = {}

    sdk_max_retries_seen: set[str] = set()

    def note_sdk_retries(kwargs: dict) -> None:
        # What the provider call was told to retry itself (the SDK-level max_retries).
        optional = kwargs.get("optional_params") or {}
        sdk_max_retries_seen.add(str(optional.get("max_retries")))

    def start_attempt(dep_id: str) -> tuple[dict, str]:
        index = calls_per_dep.get(dep_id, 0)
        calls_per_dep[dep_id] = index + 1
        outcome = _draw(case, deployments[dep_id], index)
        request = REQUEST.get()
        n = rec.attempt_counter.get(request, 0) + 1 if request is not None else 0
        if request is not None:
            rec.attempt_counter[request] = n
        entry = {
            "request": request,
            "attempt": n,
            "deployment": dep_id,
            "model_group": deployments[dep_id]["model_name"],
            "deployment_call": index,
            "start_ms": rec.ms(),
            "end_ms": None,
            "outcome": outcome,
        }
        rec.attempts.append(entry)
        return entry, outcome

    def usage() -> dict:
        return {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }

    async def begin(model, kwargs):  # noqa: ANN001
        """Starts an attempt at `model`: its deployment and log entry, or, after the
        deployment's error latency, the error its pattern draws."""
        dep = deployments[model]
        note_sdk_retries(kwargs)
        entry, outcome = start_attempt(model)
        if outcome != "ok":
            await asyncio.sleep(float(dep.get("error_ms", 50)) / 1000.0)
            entry["end_ms"] = rec.ms()
            raise _error_for(outcome, dep, model)
        return dep, entry

    class Mock(CustomLLM):
        async def acompletion(self, model, messages, *args, **kwargs):  # noqa: ANN001
            dep, entry = await begin(model, kwargs)
            await asyncio.sleep(float(dep.get("duration_ms", 200)) / 1000.0)
            entry["end_ms"] = rec.ms()
            return ModelResponse(
                model=model,
                choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                usage=usage(),
            )

        async def astreaming(self, model, messages, *args, **kwargs):  # noqa: ANN001
            dep, entry = await begin(model, kwargs)
            ttft = float(dep.get("ttft_ms", 100))
            duration = max(ttft, float(dep.get("duration_ms", 200)))
            await asyncio.sleep(ttft / 1000.0)
            entry["ttft_ms"] = rec.ms()
            yield {"text": "o", "tool_use": None, "is_finished": False, "finish_reason": "", "usage": None, "index": 0}
            await asyncio.sleep((duration - ttft) / 1000.0)
            entry["end_ms"] = rec.ms()
            yield {
                "text": "k",
                "tool_use": None,
                "is_finished": True,
                "finish_reason": "stop",
                "usage": usage(),
                "index": 0,
            }

    litellm.custom_provider_map = [{"provider": "mock", "custom_handler": Mock()}]
    litellm.suppress_debug_info = True

    # The router's own records: cooldowns as it writes them to its cooldown store, the sleeps it
    # asks its host for (retry backoff, the wait before a fallback), the token counts it makes.
    original_put = RouterCooldownStore.put
    original_async_put = RouterCooldownStore.async_put
    original_async_increment = RouterCooldownStore.async_increment_allowed_fails
    original_sleep = PythonHost.sleep

    def note_cooldown(model_id: str, value: dict, ttl: float) -> None:
        if rec is None:
            return
        stamp = float(value.get("timestamp", time.time()))
        start_ms = rec.wall_ms(stamp, wall_t0)
        rec.cooldowns.append(
            {
                "deployment": model_id,
                "start_ms": start_ms,
                "until_ms": round(start_ms + float(ttl) * 1000.0, 3),
                "cooldown_time_s": value.get("cooldown_time"),
                "status": value.get("status_code"),
                "request": REQUEST.get(),
                "written_ms": rec.ms(),
            }
        )

    def put(self, model_id, value, ttl):  # noqa: ANN001
        note_cooldown(model_id, value, ttl)
        return original_put(self, model_id, value, ttl)

    async def async_put(self, model_id, value, ttl):  # noqa: ANN001
        note_cooldown(model_id, value, ttl)
        with loop.native_call():
            return await original_async_put(self, model_id, value, ttl)

    async def async_increment_allowed_fails(self, model_id, suffix, ttl):  # noqa: ANN001
        with loop.native_call():
            return await original_async_increment(self, model_id, suffix, ttl)

    def sleep(self, seconds):  # noqa: ANN001
        if rec is not None:
            rec.sleeps.append({"request": REQUEST.get(), "start_ms": rec.ms(), "seconds": round(float(seconds), 6)})
        return original_sleep(self, seconds)

    RouterCooldownStore.put = put
    RouterCooldownStore.async_put = async_put
    RouterCooldownStore.async_increment_allowed_fails = async_increment_allowed_fails
    PythonHost.sleep = sleep

    cache_ops: list[dict] = []
    if trace_cache:
        # Every cache step the native core asks its host for (op, key, value, ttl) and the answer.
        from litellm.router_rust.core import RustCore

        original_answer = RustCore._answer_cache

        async def answer_cache(self, step):  # noqa: ANN001
            result = await original_answer(self, step)
            if rec is not None:
                cache_ops.append(
                    {
                        "ms": rec.ms(),
                        "request": REQUEST.get(),
                        "op": step.get("op"),
                        "key": step.get("key") if step.get("key") is not None else step.get("keys"),
                        "value": step.get("value"),
                        "ttl": step.get("ttl"),
                        "local": step.get("local"),
                        "answer": result,
                    }
                )
            return result

        RustCore._answer_cache = answer_cache

        # ...and the increments Python strategies make on the router's cache themselves.
        from litellm.caching.dual_cache import DualCache

        def traced(name, original):  # noqa: ANN001
            if asyncio.iscoroutinefunction(original):

                async def wrapper(self, key, value, *args, **kwargs):  # noqa: ANN001
                    result = await original(self, key, value, *args, **kwargs)
                    if rec is not None:
                        cache_ops.append({"ms": rec.ms(), "request": REQUEST.get(), "op": f"python:{name}",
                                          "key": key, "value": value, "ttl": kwargs.get("ttl"), "answer": result})
                    return result
            else:

                def wrapper(self, key, value, *args, **kwargs):  # noqa: ANN001
                    result = original(self, key, value, *args, **kwargs)
                    if rec is not None:
                        cache_ops.append({"ms": rec.ms(), "request": REQUEST.get(), "op": f"python:{name}",
                                          "key": key, "value": value, "ttl": kwargs.get("ttl"), "answer": result})
                    return result

            return wrapper

        for name in ("increment_cache", "async_increment_cache", "async_increment_cache_post_call"):
            if hasattr(DualCache, name):
                setattr(DualCache, name, traced(name, getattr(DualCache, name)))

    model_list = []
    for dep in case["deployments"]:
        params = dict(dep.get("litellm_params", {}) or {})
        params["model"] = f"mock/{dep['id']}"
        # Prices go where cost-based routing reads them first (litellm_params.input_cost_per_token /
        # output_cost_per_token, router_strategy/lowest_cost.py:async_get_available_deployments).
        # A deployment without a price still gets one (1 USD per Mtok both ways): with a zero
        # response cost LiteLLM's logging runs its zero-cost diagnostic over the whole cost map on
        # every success (litellm_logging.py:Logging._record_zero_cost_diagnostic), which triples
        # the suite's run time; no case without prices routes by price.
        params.setdefault("input_cost_per_token", float(dep.get("input_usd_per_mtok", 1.0)) / 1e6)
        params.setdefault("output_cost_per_token", float(dep.get("output_usd_per_mtok", 1.0)) / 1e6)
        model_info = {"id": dep["id"]}
        model_list.append({"model_name": dep["model_name"], "litellm_params": params, "model_info": model_info})

    messages = _prompt_for(input_tokens)
    prompt_tokens_counted = litellm.token_counter(model="mock/x", messages=messages)

    async def main() -> None:
        nonlocal rec, wall_t0
        router = litellm.Router(model_list=model_list, **(case.get("router_settings") or {}))
        # First arrival at the next whole UTC minute of virtual time.
        now = time.time()
        target = (math.floor(now / 60.0) + 1) * 60.0
        await asyncio.sleep(target - now)
        wall_t0 = time.time()
        rec = Recorder(time.monotonic())
        t0 = loop.time()
        spacing = float(case.get("spacing_ms", 10)) / 1000.0
        tasks = []

        async def one(i: int) -> None:
            REQUEST.set(i)
            entry = {"request": i, "arrival_ms": rec.ms(), "end_ms": None, "outcome": None}
            rec.requests.append(entry)
            try:
                response = await router.acompletion(model=case["model"], messages=messages, stream=stream)
                if stream:
                    first = None
                    async for _chunk in response:
                        if first is None:
                            first = rec.ms()
                    entry["ttft_ms"] = first
                hidden = getattr(response, "_hidden_params", None) or {}
                entry["deployment"] = hidden.get("model_id")
                entry["outcome"] = "ok"
            except Exception as error:  # noqa: BLE001
                entry["outcome"] = _outcome_of_error(error)
                entry["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            entry["end_ms"] = rec.ms()

        def spawn(i: int) -> None:
            tasks.append(loop.create_task(one(i)))

        for i in range(int(case["requests"])):
            loop.call_at(t0 + i * spacing, spawn, i)
        await asyncio.sleep(int(case["requests"]) * spacing)
        while True:
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)
        # Let callbacks and background tasks settle.
        await asyncio.sleep(1.0)

    real_start = clock.real_s()
    loop.run_until_complete(main())
    if loop.untracked_wakeups:
        print(
            f"litellm_driver: warning: case {case['name']}: {loop.untracked_wakeups} wake-ups from threads the "
            "virtual clock did not wait for; the result may differ between runs",
            file=sys.stderr,
        )
    if os.environ.get("ROUTESIM_DRIVER_TIMINGS"):
        print(
            f"  {case['name']}: {clock.real_s() - real_start:.2f} s real, of which {clock.real_wait_ns / 1e9:.2f} s "
            f"in {clock.real_waits} real waits",
            file=sys.stderr,
        )
    rec.requests.sort(key=lambda r: r["request"])
    return {
        "requests": rec.requests,
        "attempts": rec.attempts,
        "cooldowns": rec.cooldowns,
        "cooldown_episodes": cooldown_episodes(rec.cooldowns),
        "sleeps": rec.sleeps,
        "prompt_tokens_counted": prompt_tokens_counted,
        "sdk_max_retries_seen": sorted(sdk_max_retries_seen),
        **({"cache_ops": cache_ops} if trace_cache else {}),
    }


# --------------------------------------------------------------------------------------------
# the suite


def _child(case: dict, out_path: str, trace_cache: bool) -> None:
    try:
        result = run_case(case, trace_cache)
    except BaseException:  # noqa: BLE001
        result = {"driver_error": traceback.format_exc()}
    with open(out_path, "w") as f:
        json.dump(result, f)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--trace-cache", action="store_true", help="also record every cache step of the native core (cache_ops)"
    )
    args = parser.parse_args()

    _reexec_with_vclock()
    clock = VClock()
    clock.enable(VIRTUAL_EPOCH_S, MONO_START_S)

    with open(args.cases, "rb") as f:
        cases = tomllib.load(f)["case"]
    if args.case:
        known = {c["name"] for c in cases}
        missing = [n for n in args.case if n not in known]
        if missing:
            raise SystemExit(f"unknown case(s): {', '.join(missing)}")
        cases = [c for c in cases if c["name"] in args.case]

    import litellm  # imported once, before forking

    # Warm what every case loads anyway (the tokenizer, the router's modules), still before the fork.
    litellm.token_counter(model="mock/x", messages=[{"role": "user", "content": "hi"}])
    import litellm.redis.stores.router_cooldowns  # noqa: F401
    import litellm.router_python_host  # noqa: F401
    import litellm.router_rust.core  # noqa: F401
    import litellm.router_rust.invoke.endpoints  # noqa: F401
    import litellm.router_rust.steps.selection  # noqa: F401
    from importlib.metadata import version

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.parts"
    tmp.mkdir(exist_ok=True)
    real_start = clock.real_s()
    running: dict[int, tuple[str, float]] = {}
    # Longest first (by request count), so the two workers finish together; the output keeps
    # the cases file's order.
    queue = sorted(cases, key=lambda c: -int(c.get("requests", 0)))
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}
    while queue or running:
        while queue and len(running) < max(1, args.jobs):
            case = queue.pop(0)
            part = str(tmp / f"{case['name']}.json")
            pid = os.fork()
            if pid == 0:
                _child(case, part, args.trace_cache)
            running[pid] = (case["name"], clock.real_s())
        pid, _status = os.wait()
        if pid in running:
            name, t = running.pop(pid)
            timings[name] = round(clock.real_s() - t, 2)
    failed = []
    for case in cases:
        part = tmp / f"{case['name']}.json"
        try:
            results[case["name"]] = json.loads(part.read_text())
            part.unlink()
        except (OSError, ValueError):
            results[case["name"]] = {"driver_error": "the case's process wrote no result"}
        if "driver_error" in results[case["name"]]:
            failed.append(case["name"])
    try:
        tmp.rmdir()
    except OSError:
        pass
    document = {"litellm_version": version("litellm"), "cases": results}
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    elapsed = clock.real_s() - real_start
    print(f"litellm_driver: {len(cases)} case(s) in {elapsed:.1f} s real time -> {out}", file=sys.stderr)
    if os.environ.get("ROUTESIM_DRIVER_TIMINGS"):
        for name, t in sorted(timings.items(), key=lambda kv: -kv[1]):
            print(f"  {t:7.2f} s  {name}", file=sys.stderr)
    for name in failed:
        print(f"litellm_driver: case {name} failed:\n{results[name]['driver_error']}", file=sys.stderr)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
