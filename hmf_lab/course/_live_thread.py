"""The explorer's background work, apart from its sliders: debounced timing, helper threads, stopping them.

:class:`LiveTiming` is a mixin for an explorer (``hl.widgets.Explorer``). In a notebook kernel the timing
runs on the kernel's own event loop (``asyncio``), one measurement per loop turn, so it may set the torch
thread count and slider messages are served in between; only the SVDs behind the timed layers and the
cache warm-up run in helper threads. Outside a kernel (scripts, tests) the timing runs in one helper
thread that never changes process-wide state. :meth:`LiveTiming.stop` ends everything with timed joins,
and every live explorer is stopped before the interpreter exits (a thread still inside a torch kernel at
shutdown aborts the process).

The host class provides: ``debounce`` (seconds), ``heuristic`` (a widget with ``.value``), ``timing_out``
(an HTML widget), ``widget``, ``warm(progress, _generation, heuristic)``, ``_k_r()`` (the sliders' split
and rank), ``_timed_layers(k, r, heuristic)``, ``_time_kw()`` (keyword arguments of
``hl.experiments.tradeoff.time_layers``) and ``_show(k, r, race)``; it calls ``_init_background(heuristic)``
in its constructor, ``_schedule_timing()`` after a slider move and ``_start_warm(heuristic)`` after a
menu change.
"""
from __future__ import annotations

import asyncio
import atexit
import threading
import time
import weakref
from html import escape

from hmf_lab.experiments.tradeoff import time_layers

__all__ = ["LiveTiming"]


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _on_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread (a notebook kernel's), or None (a script, a test)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LiveTiming:
    """Debounced timing and helper threads for an explorer (see the module docstring for the host's part).

    >>> import torch, hmf_lab as hl
    >>> ex = hl.explorer(torch.randn(16, 16), timing=False, precompute=False)
    >>> isinstance(ex, LiveTiming), ex.wait(timeout=5)
    (True, True)
    >>> ex.stop(); ex._closed
    True
    """

    def _init_background(self, heuristic: str) -> None:
        """The state of the background work (call once from the host's constructor)."""
        self._generation = 0  # timing requests; a job for an older generation stops at its next step
        self._closed = False
        self._cv = threading.Condition()  # guards the fields below (helper threads and their requests)
        self._handle: asyncio.TimerHandle | None = None  # debounced timing on the kernel's loop
        self._task: asyncio.Task | None = None
        # the kernel's main event loop (a cell runs on it): timing runs there even when a slider message
        # arrives on another thread (JupyterLab may route widget messages to a kernel subshell thread)
        self._loop: asyncio.AbstractEventLoop | None = _on_loop() if _on_main_thread() else None
        self._build_thread: threading.Thread | None = None  # SVDs of the timed layers (loop mode)
        self._worker: threading.Thread | None = None  # the timing thread (no loop)
        self._due = 0.0
        self._done = 0
        self._warm_thread: threading.Thread | None = None
        self._warm_generation = 0
        self._warm_heuristic = heuristic
        _LIVE.add(self)

    # ------------------------------------------------------------------ cache warm-up
    def _start_warm(self, heuristic: str) -> None:
        """Fill ``heuristic``'s spectra in one helper thread; a running one switches to the new heuristic."""
        with self._cv:
            if self._closed:
                return
            self._warm_generation += 1
            self._warm_heuristic = heuristic
            if self._warm_thread is None:
                self._warm_thread = threading.Thread(target=self._warm_loop, daemon=True, name="hmf-explorer-warm")
                self._warm_thread.start()

    def _warm_loop(self) -> None:
        while True:
            with self._cv:
                gen, h = self._warm_generation, self._warm_heuristic
            self.warm(progress=False, _generation=gen, heuristic=h)
            with self._cv:
                if self._closed or gen == self._warm_generation:
                    self._warm_thread = None
                    self._cv.notify_all()
                    return

    # ------------------------------------------------------------------ timing
    def _schedule_timing(self) -> None:
        self._generation += 1
        if self._closed:
            return
        here = _on_loop()
        if (self._loop is None or self._loop.is_closed()) and here is not None and _on_main_thread():
            self._loop = here
        home = self._loop
        if home is not None and not home.is_closed():  # a notebook kernel: debounce and time on its main loop
            if here is home:
                self._debounce()
            else:  # a message handled on another thread (a kernel subshell): hand the request to the main loop
                home.call_soon_threadsafe(self._debounce)
            return
        with self._cv:  # no loop: one helper thread, woken with the latest request
            self._due = time.monotonic() + self.debounce
            if self._worker is None:
                self._worker = threading.Thread(target=self._worker_loop, daemon=True, name="hmf-explorer-timing")
                self._worker.start()
            self._cv.notify_all()

    # loop mode -----------------------------------------------------------
    def _debounce(self) -> None:
        """On the main loop: (re)start the debounce timer for the latest request."""
        if self._closed:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(self.debounce, self._start_task, self._generation)

    def _start_task(self, generation: int) -> None:
        if generation != self._generation or self._closed:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.ensure_future(self._timing_async(generation))

    async def _timing_async(self, generation: int) -> None:
        k, r = self._k_r()
        h = self.heuristic.value
        try:
            layers = await self._off_thread(lambda: self._timed_layers(k, r, h))
            if generation != self._generation or self._closed:
                return
            steps = time_layers(layers, _steps=True, **self._time_kw())
            try:
                while True:
                    next(steps)  # one measurement on the kernel thread
                    await asyncio.sleep(0)  # serve slider messages in between
                    if generation != self._generation or self._closed:
                        steps.close()
                        return
            except StopIteration as stop:
                self._show(k, r, stop.value)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # shown, not lost in the kernel log
            self.timing_out.value = f"<span style='color:#b00'>timing failed: {escape(repr(e))}</span>"

    async def _off_thread(self, fn):
        """Run ``fn`` in a helper thread (the SVDs of the timed layers), awaiting it on the loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def deliver(value, error):
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(value)

        def run():
            try:
                value, error = fn(), None
            except BaseException as e:  # handed to the awaiting coroutine
                value, error = None, e
            if not loop.is_closed():
                loop.call_soon_threadsafe(deliver, value, error)

        t = threading.Thread(target=run, daemon=True, name="hmf-explorer-build")
        with self._cv:
            self._build_thread = t
        t.start()
        return await fut

    # thread mode ---------------------------------------------------------
    def _worker_loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (self._done == self._generation or time.monotonic() < self._due):
                    if self._done == self._generation:
                        self._worker = None  # nothing to do: end (the next request starts a new one)
                        self._cv.notify_all()
                        return
                    self._cv.wait(max(0.0, self._due - time.monotonic()))
                if self._closed:
                    self._worker = None
                    self._cv.notify_all()
                    return
                generation = self._generation
            try:
                self._timing_job(generation)
            finally:
                with self._cv:
                    self._done = max(self._done, generation)

    def _timing_job(self, generation: int) -> None:
        if generation != self._generation or self._closed:
            return
        try:
            k, r = self._k_r()
            layers = self._timed_layers(k, r, self.heuristic.value)
            steps = time_layers(layers, _steps=True, **self._time_kw())
            try:
                while True:
                    next(steps)
                    if generation != self._generation or self._closed:
                        steps.close()
                        return
            except StopIteration as stop:
                self._show(k, r, stop.value)
        except Exception as e:  # a background thread must not die silently: show what went wrong
            self.timing_out.value = f"<span style='color:#b00'>timing failed: {escape(repr(e))}</span>"

    # ------------------------------------------------------------------ lifecycle
    def _threads(self) -> list[threading.Thread]:
        with self._cv:
            return [t for t in (self._worker, self._warm_thread, self._build_thread) if t is not None]

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait (at most ``timeout`` s) until no background work runs or is pending; True when idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [t for t in self._threads() if t.is_alive()]
            with self._cv:
                pending = self._worker is not None
            if not busy and not pending:
                return True
            for t in busy:
                t.join(max(0.0, min(0.1, deadline - time.monotonic())))
        return not any(t.is_alive() for t in self._threads())

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel pending timing and end the background threads (timing, SVDs, warm-up), each join timed."""
        with self._cv:
            self._closed = True
            self._generation += 1
            self._cv.notify_all()
        for obj in (self._handle, self._task):
            if obj is not None:
                if self._loop is not None and _on_loop() is not self._loop and not self._loop.is_closed():
                    self._loop.call_soon_threadsafe(obj.cancel)
                elif _on_loop() is self._loop:
                    obj.cancel()
        deadline = time.monotonic() + timeout
        for t in self._threads():
            if t.is_alive() and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop the background threads and close the widgets."""
        self.stop()
        self.widget.close()


#: explorers whose background threads must be stopped before the interpreter exits: a thread still
#: inside a torch kernel at shutdown aborts the process ("terminate called without an active exception")
_LIVE: "weakref.WeakSet[LiveTiming]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for ex in list(_LIVE):
        ex.stop(timeout=10.0)
