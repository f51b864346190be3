"""A small open-loop HTTP load generator on asyncio streams (HTTP/1.1 keep-alive, JSON).

Open loop: work arrives on a fixed schedule whatever the server does, and latency is measured
from the scheduled start, so a slow server cannot hide its queueing delay (no coordinated
omission). It is deliberately tiny so that its own CPU cost stays small next to the server's.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


class HttpError(Exception):
    pass


class Connection:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.base_headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _ensure(self) -> None:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method: str, path: str, payload=None) -> tuple[int, object]:
        for attempt in (1, 2):  # one reconnect if the server closed an idle keep-alive socket
            await self._ensure()
            body = b"" if payload is None else json.dumps(payload).encode()
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"{self.base_headers}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
            )
            try:
                self.writer.write(head.encode() + body)
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionResetError("server closed the connection")
                status = int(status_line.split()[1])
                length, close, chunked = 0, False, False
                while True:
                    line = await self.reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and "close" in value.lower():
                        close = True
                    elif name == "transfer-encoding" and "chunked" in value.lower():
                        chunked = True
                if chunked:
                    data = b""
                    while True:
                        size = int((await self.reader.readline()).strip(), 16)
                        if size == 0:
                            await self.reader.readline()
                            break
                        data += await self.reader.readexactly(size + 2)
                else:
                    data = await self.reader.readexactly(length) if length else b""
                if close:
                    await self.close()
                return status, (json.loads(data) if data else None)
            except (ConnectionResetError, asyncio.IncompleteReadError, BrokenPipeError):
                await self.close()
                if attempt == 2:
                    raise
        raise HttpError("unreachable")


@dataclass
class Stats:
    pair_ms: list[float] = field(default_factory=list)
    pair_at: list[float] = field(default_factory=list)  # each pair's scheduled start, s from t0
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    empty: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def windows(stats: Stats, seconds: float) -> list[tuple[float, int, float, float]]:
    """(window start s, pairs, p99 ms, max ms) of the pairs scheduled in each `seconds` window."""
    buckets: dict[int, list[float]] = {}
    for at, ms in zip(stats.pair_at, stats.pair_ms, strict=True):
        buckets.setdefault(int(at // seconds), []).append(ms)
    return [
        (n * seconds, len(values), percentile(values, 99), max(values))
        for n, values in sorted(buckets.items())
    ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_pairs(
    *,
    host: str,
    port: int,
    project_id: int,
    tokens: list[str],
    labels: list[str],
    rate: float,
    duration: float,
) -> tuple[Stats, float]:
    """Offer `rate` next+submit pairs per second for `duration` seconds; return stats and the
    achieved pair throughput."""
    stats = Stats()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    conns = [Connection(host, port, {"Authorization": f"Token {t}"}) for t in tokens]
    for c in conns:
        idle.put_nowait(c)
    next_path = f"/api/projects/{project_id}/next/"

    async def one_pair(scheduled: float, n: int) -> None:
        conn = await idle.get()
        try:
            t0 = time.perf_counter()
            status, data = await conn.request("POST", next_path, {"exclude": []})
            t1 = time.perf_counter()
            stats.next_ms.append((t1 - t0) * 1000)
            if status == 204:
                stats.empty += 1
                return
            if status != 200:
                stats.error(f"next {status}")
                return
            item_id = data["item"]["id"]
            status, _ = await conn.request(
                "POST",
                f"/api/projects/{project_id}/items/{item_id}/submit/",
                {"labels": [labels[n % len(labels)]], "time_spent_ms": 1000},
            )
            t2 = time.perf_counter()
            stats.submit_ms.append((t2 - t1) * 1000)
            if status != 201:
                stats.error(f"submit {status}")
                return
            stats.pair_ms.append((t2 - scheduled) * 1000)
            stats.pair_at.append(scheduled - start)
        except Exception as exc:  # counted, never hidden
            stats.error(type(exc).__name__)
        finally:
            idle.put_nowait(conn)

    start = time.perf_counter()
    tasks = []
    n = 0
    interval = 1.0 / rate
    while True:
        scheduled = start + n * interval
        if scheduled - start >= duration:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one_pair(scheduled, n)))
        n += 1
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    return stats, len(stats.pair_ms) / elapsed
