"""MLLP transport: an asyncio listener that ingests HL7 v2 messages, and a client with retries.

Framing is ``<VT> message <FS><CR>``. The listener answers every frame with an ACK written
after the commit (AA), or AE/AR with ERR; bytes outside a frame, oversized or undecodable
frames get an AR (when an answer is possible) and never take the listener down. Ingest runs
in one worker thread, so the event loop keeps accepting connections while SQLite commits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from fhir_server.mapping.hl7v2.ack import build_ack

log = logging.getLogger("fhir_server.mapping.mllp")

START = b"\x0b"
END = b"\x1c\x0d"
MAX_FRAME_BYTES = 16 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    return START + payload + END


class FrameError(Exception):
    pass


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME_BYTES) -> bytes | None:
    """The next frame's payload; None at a clean end of stream; FrameError for a broken frame."""
    try:
        data = await reader.readuntil(END)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip(b"\r\n\x00 \t"):
            raise FrameError("connection closed inside a frame") from None
        return None
    except asyncio.LimitOverrunError:
        # drain what is buffered so the next frame can be read, then refuse this one
        await _discard_until_end(reader, max_bytes)
        raise FrameError(f"frame exceeds {max_bytes} bytes") from None
    start = data.find(START)
    if start == -1:
        raise FrameError("frame without start block (0x0B)")
    junk = data[:start].strip(b"\r\n\x00 \t")
    if junk:
        log.warning("discarded %d bytes outside an MLLP frame", len(junk))
    payload = data[start + 1 : -2]
    if START in payload:
        raise FrameError("second start block inside a frame")
    return payload


async def _discard_until_end(reader: asyncio.StreamReader, max_bytes: int) -> None:
    while True:
        try:
            await reader.readuntil(END)
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return


class MllpServer:
    """``await server.start()``, then ``server.port``; ``await server.stop()``."""

    def __init__(self, ingestor, host: str = "127.0.0.1", port: int = 2575, charset: str | None = None,
                 max_frame_bytes: int = MAX_FRAME_BYTES, idle_timeout: float = 600.0):
        self.ingestor = ingestor
        self.host = host
        self.port = port
        self.charset = charset
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout = idle_timeout
        self._server: asyncio.base_events.Server | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mllp-ingest")
        self.stats = {"frames": 0, "AA": 0, "AE": 0, "AR": 0, "duplicates": 0, "broken_frames": 0}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=self.max_frame_bytes)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("MLLP listener on %s:%d", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        async with self._server:
            await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._executor.shutdown(wait=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    payload = await asyncio.wait_for(read_frame(reader, self.max_frame_bytes), self.idle_timeout)
                except FrameError as exc:
                    self.stats["broken_frames"] += 1
                    self.stats["AR"] += 1
                    log.warning("broken MLLP frame from %s: %s", peer, exc)
                    ack = build_ack(None, "AR", f"broken MLLP frame: {exc}", "100")
                    writer.write(frame(ack.encode("ascii", errors="replace")))
                    await writer.drain()
                    if "closed" in str(exc):
                        break
                    continue
                if payload is None:
                    break
                self.stats["frames"] += 1
                outcome = await loop.run_in_executor(self._executor, self.ingestor.ingest_v2, payload, self.charset)
                self.stats[outcome.code] += 1
                if outcome.duplicate:
                    self.stats["duplicates"] += 1
                writer.write(frame(outcome.ack_bytes))
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # whatever a peer does, the listener stays up
            log.exception("MLLP connection from %s failed", peer)
        finally:
            writer.close()


class MllpClient:
    """A blocking MLLP sender for legacy receivers: reconnects and retries until an ACK arrives."""

    def __init__(self, host: str, port: int, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sock: socket.socket | None = None
        self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._buffer = b""
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self) -> "MllpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _receive(self, sock: socket.socket) -> bytes:
        while END not in self._buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("receiver closed the connection before acknowledging")
            self._buffer += chunk
        data, _, self._buffer = self._buffer.partition(END)
        start = data.find(START)
        return data[start + 1 :] if start != -1 else data

    def send(self, message: bytes) -> bytes:
        """Send one message and return the raw ACK payload; retries on connection errors and timeouts."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                sock = self._connect()
                sock.sendall(frame(message))
                return self._receive(sock)
            except (OSError, ConnectionError) as exc:
                last = exc
                self.close()
                if attempt < self.retries:
                    time.sleep(self.backoff * (2**attempt))
        raise ConnectionError(f"no ACK from {self.host}:{self.port} after {self.retries + 1} attempts: {last}")
