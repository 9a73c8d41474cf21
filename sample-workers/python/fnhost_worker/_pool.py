"""The threads that run sync handlers.

A :class:`concurrent.futures.ThreadPoolExecutor` would do, but every
``submit`` builds a ``Future`` (with its ``Condition``), takes the pool's
shutdown lock and a pure-Python ``Semaphore``, and ``run_in_executor`` then
chains that future to an asyncio one with a loop wake-up per result. The
dispatcher needs none of that: its jobs catch every exception themselves
and report their result through :meth:`Dispatcher._post_from_thread`, which
wakes the loop once for a whole batch of results. So :class:`HandlerThreads`
takes plain callables (:meth:`run_soon`), and is also an ``Executor`` for
anything else that wants one.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections import deque
from concurrent.futures import Executor, Future
from typing import Any, Callable, Optional, TypeVar

_T = TypeVar("_T")


class HandlerThreads(Executor):
    """Up to ``max_workers`` daemon threads, started as work arrives and
    kept idle afterwards. Daemon threads, since a handler that ignores
    cancellation must not keep the process alive after the worker stops."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "fnhost-handler") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._jobs: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        #: One entry per thread that finished a job and has not been claimed
        #: by a later ``run_soon`` since. A deque's append and pop are atomic,
        #: so the hot path takes no lock: a lock held by a handler thread
        #: that loses the GIL inside it would stall the event loop.
        self._idle: deque[None] = deque()
        #: Guards starting threads and ``_shutdown``.
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def run_soon(self, job: Callable[[], None]) -> None:
        """Runs ``job`` on a pool thread; it should not raise (an exception
        escaping it is printed to stderr with its traceback, and the thread
        carries on). ``RuntimeError`` after :meth:`shutdown`, or when no
        thread runs and none can be started."""
        if self._shutdown:
            raise RuntimeError("the handler threads are shut down")
        try:
            self._idle.pop()
        except IndexError:
            # No idle thread: start one unless all are running (then the
            # job waits for the first to finish).
            thread = None
            with self._lock:
                if len(self._threads) < self._max_workers:
                    name = f"{self._prefix}_{len(self._threads)}"
                    thread = threading.Thread(target=self._work, name=name, daemon=True)
                    self._threads.append(thread)
            if thread is not None:
                try:
                    thread.start()
                except RuntimeError:
                    # No thread could be started ("can't start new thread"):
                    # give its place back, and say so rather than queue a
                    # job that no thread may ever take.
                    with self._lock:
                        self._threads.remove(thread)
                        alone = not self._threads
                    if alone:
                        raise
        self._jobs.put(job)

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> "Future[_T]":
        """:meth:`Executor.submit`: runs ``fn(*args, **kwargs)`` on a pool thread."""
        job = _Submitted(fn, args, kwargs)
        self.run_soon(job)
        return job.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops the threads once the queued jobs are done (with
        ``cancel_futures``, drops the queued jobs instead, and cancels the
        futures of those that came from :meth:`submit`). With ``wait``,
        returns after the running jobs finish."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if isinstance(job, _Submitted):
                    job.future.cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                if thread.ident is not None:
                    thread.join()

    def _work(self) -> None:
        jobs = self._jobs
        idle = self._idle
        while True:
            job = jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # noqa: BLE001 - a raising job must not end its thread
                traceback.print_exc()
            del job  # the job's closure holds the invocation; drop it while idle
            idle.append(None)


class _Submitted:
    """A :meth:`HandlerThreads.submit` job: runs ``fn`` into ``future``,
    which :meth:`HandlerThreads.shutdown` cancels if the job never ran."""

    __slots__ = ("future", "_fn", "_args", "_kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.future: Future[Any] = Future()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def __call__(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the future
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
