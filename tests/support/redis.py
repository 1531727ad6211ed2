"""A private redis-server (no persistence) on a free port."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from .processes import held_port, need_tool, start_process, stop_process, wait_for


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = need_tool(shutil.which("redis-server"), "redis-server")
        argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = start_process(argv, env={}, log=None)
        wait_for(self.answers, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Stop the server and wait until it no longer answers."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        wait_for(lambda: not self.answers(), timeout=10, what=f"redis-server on port {self.port} to stop")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of our own; stopped on the way out, whatever happened inside."""
    with held_port() as port:
        server = PrivateRedis(port=port)
        try:
            server.start()
            yield server
        finally:
            if server.process is not None:
                server.stop()


def redis_queue_delete(url: str, queue: str) -> None:
    """Remove a Celery queue (and its binding) that a test made on a shared Redis."""
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
    finally:
        client.close()
