"""Separate hosts on one machine: network namespaces on a bridge.

The services (PostgreSQL, the broker, an ERP) run in the machine's own
namespace, on 127.0.0.1. A ``Lan`` makes a bridge with an address of its own
(the "server" every host reaches), and one namespace per worker host joined
to it by a veth pair; TCP proxies listening on the bridge's address carry the
hosts' connections to the services. Unplugging a host's veth from the bridge
is a partition: its packets vanish (no reset, no refusal, the link stays up),
its connections hang as they would across a real network, and plugging it in
again lets them carry on or time out as TCP decides.

Needs root and iproute2 (``ip netns``). Names carry the test process's pid,
so two test runs on one machine never touch each other's links.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2, ...)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def _subnet() -> int:
    """A 10.77.N.0/24 no interface on the machine uses yet."""
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    free = [n for n in range(1, 255) if f"10.77.{n}." not in used]
    if not free:
        raise NetnsUnavailable("no free 10.77.N.0/24 subnet for a test network")
    return random.choice(free)


@dataclass
class Lan:
    """A bridge (``server``'s address) and worker hosts in namespaces on it."""

    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000:05d}")
    subnet: int = 0
    hosts: dict[str, str] = field(default_factory=dict)  # host name -> its address
    _links: list[str] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"s2sbr{self.tag}"

    @property
    def server(self) -> str:
        """The address the hosts reach the services at."""
        return f"10.77.{self.subnet}.1"

    def namespace(self, host: str) -> str:
        return f"s2s{self.tag}{host}"

    def _veth(self, host: str) -> str:
        # Interface names are at most 15 characters.
        return f"s2sv{self.tag}{host}"

    def start(self, *hosts: str) -> Lan:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (this test run is not root)")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("iproute2's `ip` is not installed")
        self.subnet = _subnet()
        _ip("link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        _ip("addr", "add", f"{self.server}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, host in enumerate(hosts, start=2):
            ns, veth, peer = self.namespace(host), self._veth(host), f"s2sp{self.tag}{host}"
            _ip("netns", "add", ns)
            self._namespaces.append(ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            self._links.append(veth)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            address = f"10.77.{self.subnet}.{i}"
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", peer)
            _ip("-n", ns, "link", "set", peer, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            self.hosts[host] = address
        return self

    def run_in(self, host: str) -> list[str]:
        """The command prefix that runs a program on ``host``."""
        return ["ip", "netns", "exec", self.namespace(host)]

    def cut(self, host: str) -> None:
        """Partition ``host``: its cable leaves the switch. Both ends keep
        their carrier, so nothing on the host learns of the cut; its packets
        are simply lost, as across a real network."""
        _ip("link", "set", self._veth(host), "nomaster")

    def restore(self, host: str) -> None:
        _ip("link", "set", self._veth(host), "master", self.bridge)

    def stop(self) -> None:
        for link in reversed(self._links):
            with contextlib.suppress(NetnsUnavailable):
                _ip("link", "del", link)
        for ns in self._namespaces:
            with contextlib.suppress(NetnsUnavailable):
                _ip("netns", "del", ns)
        self._links.clear()
        self._namespaces.clear()
