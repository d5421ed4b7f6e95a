"""The OSC transport: a UDP server (asyncio) speaking :mod:`protocol.osc`'s address space.

python-osc parses and builds the datagrams (``OscPacket``, ``OscMessageBuilder``); the address
space and argument conversion are :mod:`protocol.osc`'s. Replies go to the sender's address, or to
the sender's host at ``--osc-reply-port`` when one is configured (Max, Pd and many DAW surfaces
listen on a fixed port). Job events (``/stemforge/job/progress``, ``/done`` with host paths,
``/failed``) follow the same way. A datagram that is not OSC is dropped and logged; a well-formed
message with an unknown address or wrong arguments is answered with ``/stemforge/error``.

The server binds 127.0.0.1 unless another address is configured. It can trigger work and name
files only inside the allowed folders (see :meth:`daw_bridge.transfers.Transfers.check_path`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from daw_bridge.dispatcher import Dispatcher, Peer
from protocol.errors import StemforgeError
from protocol.messages import Error, Message
from protocol.osc import message_to_osc, osc_to_message

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65_507
MAX_PEERS = 256  # remembered reply addresses


def build_datagram(address: str, args: tuple[Any, ...]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for value in args:
        if isinstance(value, bool):
            builder.add_arg(int(value), "i")
        elif isinstance(value, int):
            builder.add_arg(value, "i" if -(2**31) <= value < 2**31 else "h")
        elif isinstance(value, float):
            builder.add_arg(value, "f")
        else:
            builder.add_arg(str(value), "s")
    return builder.build().dgram


class OscPeer(Peer):
    """A reply address. Messages without an OSC form (they answer WebSocket-only requests) are dropped."""

    transport = "osc"

    def __init__(self, server: "OscServer", addr: tuple[str, int]) -> None:
        super().__init__(f"osc {addr[0]}:{addr[1]}")
        self.server = server
        self.addr = addr

    async def send(self, msg: Message) -> None:
        try:
            address, args = message_to_osc(msg)
        except StemforgeError as exc:
            log.debug("%s: %s has no OSC form (%s); dropped", self.label, msg.TYPE, exc.message)
            return
        self.server.sendto(build_datagram(address, args), self.addr)


class OscServer(asyncio.DatagramProtocol):
    def __init__(self, dispatcher: Dispatcher, host: str, port: int, reply_port: int | None = None) -> None:
        self.dispatcher = dispatcher
        self.host = host
        self.port = port
        self.reply_port = reply_port
        self.transport: asyncio.DatagramTransport | None = None
        self._peers: dict[tuple[str, int], OscPeer] = {}
        self.dropped = 0  # garbage datagrams (for tests and logs)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        return self.port

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for peer in self._peers.values():
            self.dispatcher.unregister(peer)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if len(data) > MAX_DATAGRAM:
            log.warning("OSC reply of %d bytes to %s is too large for UDP; dropped", len(data), addr)
            return
        self.transport.sendto(data, addr)

    def peer_for(self, addr: tuple[str, int]) -> OscPeer:
        reply = (addr[0], self.reply_port) if self.reply_port else (addr[0], addr[1])
        peer = self._peers.get(reply)
        if peer is None:
            if len(self._peers) >= MAX_PEERS:
                old_addr, old = next(iter(self._peers.items()))
                del self._peers[old_addr]
                self.dispatcher.unregister(old)
            peer = self._peers[reply] = OscPeer(self, reply)
            self.dispatcher.register(peer)
        return peer

    # ---- asyncio.DatagramProtocol ---------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        addr = (addr[0], addr[1])
        try:
            packet = OscPacket(data)
            messages = [t.message for t in packet.messages]
        except Exception as exc:  # noqa: BLE001 - python-osc raises ParseError, and sometimes worse
            self.dropped += 1
            log.warning("dropped a %d-byte datagram from %s:%d that is not OSC: %s", len(data), addr[0], addr[1], exc)
            return
        peer = self.peer_for(addr)
        for osc in messages:
            self._handle(peer, osc.address, list(osc.params))

    def _handle(self, peer: OscPeer, address: str, params: list[Any]) -> None:
        try:
            msg = osc_to_message(address, params)
        except StemforgeError as exc:
            log.info("%s: refused OSC %s [%s]: %s", peer.label, address, exc.code, exc.message)
            self.dispatcher.spawn(peer.send(Error(code=exc.code, message=exc.message, in_reply_to=address)))
            return
        self.dispatcher.spawn(self._dispatch(peer, msg, address))

    async def _dispatch(self, peer: OscPeer, msg: Message, address: str) -> None:
        await self.dispatcher.handle(peer, msg)

    def error_received(self, exc: Exception) -> None:
        log.debug("OSC socket error: %s", exc)  # e.g. ICMP port unreachable from a closed reply port


__all__ = ["OscServer", "OscPeer", "build_datagram"]
