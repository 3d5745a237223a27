"""Several web processes on one port, each with its own SO_REUSEPORT socket.

With one shared listening socket the kernel hands a burst of new connections to
whichever process is awake, so one process can end up with every keep-alive
connection while the others idle. With SO_REUSEPORT each process listens on its own
socket and the kernel spreads connections across them.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other processes may bind to the same address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _web_process(options: dict[str, Any]) -> None:
    """Entry point of one web process (started with the spawn method)."""
    # Only the spawned web processes load the server and the application; the parent,
    # which supervises them, stays small.
    import uvicorn

    from relaydesk.app import create_app
    from relaydesk.core import logs
    from relaydesk.core.config import get_settings

    logs.configure(get_settings())
    sock = reuseport_socket(options["host"], options["port"])
    config = uvicorn.Config(create_app(run_worker=False), **options)
    uvicorn.Server(config).run(sockets=[sock])


def run_web_processes(count: int, options: dict[str, Any], *, background_worker: bool) -> None:
    """Run `count` web processes and one background worker until SIGINT or SIGTERM."""
    # Fail here, with a clear message, rather than in every child: is the port free?
    probe = reuseport_socket(options["host"], options["port"])
    probe.close()
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: list[BaseProcess] = []
    worker = None
    try:
        for _ in range(count):
            processes.append(_start(context, options))
        if background_worker:
            worker = subprocess.Popen([sys.executable, "-m", "relaydesk.cli", "worker"])
        while not stopping:
            time.sleep(0.5)
            for i, proc in enumerate(processes):
                if not proc.is_alive() and not stopping:
                    log.error(
                        "web process %s exited (%s); starting another", proc.pid, proc.exitcode
                    )
                    processes[i] = _start(context, options)
            if worker is not None and worker.poll() is not None and not stopping:
                log.error("background worker exited (%s); starting another", worker.returncode)
                worker = subprocess.Popen([sys.executable, "-m", "relaydesk.cli", "worker"])
    finally:
        for proc in processes:
            if proc.is_alive() and proc.pid is not None:
                proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
        if worker is not None and worker.poll() is None:
            worker.terminate()
        for proc in processes:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        if worker is not None:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(context: Any, options: dict[str, Any]) -> BaseProcess:
    proc: BaseProcess = context.Process(target=_web_process, args=(options,), daemon=False)
    proc.start()
    return proc
