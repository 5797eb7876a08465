"""What ``platform up --ray`` asks of Ray: the ``ray start`` command line and its environment.

Pure pieces, no process is started here (:mod:`.raynode` runs them). Every port Ray opens is
named (chosen free on the platform's host), so two platforms on one machine never meet on
Ray's defaults; everything Ray writes (sessions, logs, spill, its token) goes under
``<home>/ray``, never ``$HOME/.ray`` or ``/tmp/ray``:

- ``--temp-dir`` and ``RAY_TMPDIR`` point there. Ray puts Unix sockets under its temp dir, and
  a socket path is at most 107 bytes: when ``<home>/ray`` is too long, Ray is given a short
  symbolic link to it (``$XDG_RUNTIME_DIR`` or ``/tmp``, ``platform-ray-<hash of home>``);
  the files still live under ``<home>/ray``.
- Ray 2.60's token authentication (``RAY_AUTH_MODE=token``) reads its token from
  ``RAY_AUTH_TOKEN_PATH``; left unset, Ray writes a new one to ``$HOME/.ray/auth_token``.
  The platform makes the token itself (``<home>/ray/auth_token``, mode 0600) and points
  every Ray process, and the gateway's Ray driver, at it.
- On a loopback ``--host`` Ray 2.60 replaces ``127.0.0.1`` by the machine's address
  (``resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, its
  single-machine switch: set then, so Ray's processes advertise the loopback address. Ray
  refuses worker nodes under that switch, so a worker node on a loopback host (several
  platforms on one machine) is advertised at the machine's address, as Ray wants.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import socket
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NODE_MARK",
    "TOKEN_FILE",
    "RayPorts",
    "RaySpec",
    "choose_ports",
    "driver_env",
    "is_loopback",
    "make_token",
    "ray_dir",
    "start_command",
    "start_env",
    "temp_dir_for",
]

WORKER_PORTS = 32
"""Ports named for Ray's worker processes (``--worker-port-list``): one per live worker."""
MAX_TEMP_DIR_BYTES = 40
"""Longest temp dir Ray's socket paths fit under (107 bytes, less its session and socket
names, ``session_<date>_<time>_<us>_<pid>/sockets/plasma_store``, with room to spare)."""
TOKEN_FILE = "auth_token"
DRIVER_GCS_PATIENCE_S = 10 * 365 * 24 * 3600
"""How long the gateway's Ray driver waits for a lost GCS before Ray ends the process."""
NODE_MARK = "PLATFORM_RAY_NODE_DIR"
"""The variable marking the processes of one platform's Ray node (its temp dir)."""


@dataclass(frozen=True)
class RayPorts:
    """The TCP ports one Ray node listens on (``gcs`` only on a head)."""

    gcs: int | None
    node_manager: int
    object_manager: int
    dashboard_agent_listen: int
    dashboard_agent_grpc: int
    runtime_env_agent: int
    metrics_export: int
    workers: tuple[int, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        """For the banner and ``platform status``: each port by Ray's name for it."""
        out: dict[str, object] = {k: v for k, v in self.__dict__.items() if k != "workers"}
        out["workers"] = f"{len(self.workers)} ports ({min(self.workers)}-{max(self.workers)})"
        return out


@dataclass(frozen=True)
class RaySpec:
    """One Ray node of a platform: a head (``head_address`` None) or a worker of that head."""

    host: str
    home: Path
    ports: RayPorts
    head_address: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    """Custom resources the node carries (``lake-node:<id>``: which lake node it serves)."""
    env: dict[str, str] = field(default_factory=dict)
    """Variables every process of the node inherits (its lake node's chunk directory)."""
    object_store_bytes: int | None = None
    """The node's object store size (``PLATFORM_RAY_OBJECT_STORE_BYTES``); None: Ray's own."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (Ray then keeps to this machine)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _node_ip(host: str) -> str | None:
    """The address Ray's processes advertise: the platform's host, unless it is a wildcard
    (``0.0.0.0``/``::``), where Ray's own choice (the machine's address) is the only useful one."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return "127.0.0.1" if host == "localhost" else host


def choose_ports(host: str, *, head: bool, workers: int = WORKER_PORTS) -> RayPorts:
    """Free TCP ports on ``host`` for one Ray node, all distinct (held open together while
    chosen). Another program may still take one before Ray binds it: Ray then fails to
    start and says which port."""
    bind_host = "" if _node_ip(host) is None else _node_ip(host)
    named = 7 if head else 6
    with ExitStack() as stack:
        ports = []
        for _ in range(named + workers):
            sock = stack.enter_context(socket.socket(_family(bind_host), socket.SOCK_STREAM))
            sock.bind((bind_host or "", 0))
            ports.append(sock.getsockname()[1])
    gcs = ports.pop(0) if head else None
    node_manager, object_manager, agent_listen, agent_grpc, runtime_env, metrics = ports[:6]
    return RayPorts(
        gcs,
        node_manager,
        object_manager,
        agent_listen,
        agent_grpc,
        runtime_env,
        metrics,
        workers=tuple(ports[6:]),
    )


def _family(host: str | None) -> socket.AddressFamily:
    return socket.AF_INET6 if host and ":" in host else socket.AF_INET


def ray_dir(home: Path) -> Path:
    """Where everything Ray writes for this platform lives: ``<home>/ray``."""
    return Path(home) / "ray"


def temp_dir_for(home: Path) -> Path:
    """The ``--temp-dir`` to give Ray: ``<home>/ray``, or a short link to it when that path
    is too long for Ray's Unix sockets (see the module docstring). Makes both."""
    target = ray_dir(home).resolve()
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target).encode()) <= MAX_TEMP_DIR_BYTES:
        return target
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    link = base / f"platform-ray-{hashlib.sha256(str(target).encode()).hexdigest()[:12]}"
    if link.is_symlink() and link.resolve() == target:
        return link
    if link.is_symlink():  # a stale link of an earlier home of the same hash: replace it
        link.unlink()
    try:
        link.symlink_to(target, target_is_directory=True)
    except OSError as exc:
        raise OSError(
            f"cannot make the short link {link} to Ray's directory {target} ({exc}); "
            "give --home a shorter path"
        ) from None
    return link


def make_token(home: Path, given: str | None = None) -> Path:
    """The file holding this platform's Ray token (mode 0600): ``given`` (a worker node
    learned its head's), else the one made earlier, else a new random one."""
    path = ray_dir(home) / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if given is None and path.is_file() and path.stat().st_size > 0:
        return path
    value = given if given is not None else secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    os.chmod(path, 0o600)
    return path


def start_command(spec: RaySpec, temp_dir: Path) -> list[str]:
    """``ray start ... --block`` for ``spec``, from this interpreter's environment."""
    ports = spec.ports
    args = [str(Path(sys.executable).parent / "ray"), "start", "--block"]
    if spec.head_address is None:
        args += ["--head", f"--port={ports.gcs}", "--include-dashboard=false"]
    else:
        args += [f"--address={spec.head_address}"]
    node_ip = _node_ip(spec.host)
    if node_ip is not None:
        args.append(f"--node-ip-address={node_ip}")
    return [
        *args,
        f"--node-manager-port={ports.node_manager}",
        f"--object-manager-port={ports.object_manager}",
        f"--dashboard-agent-listen-port={ports.dashboard_agent_listen}",
        f"--dashboard-agent-grpc-port={ports.dashboard_agent_grpc}",
        f"--runtime-env-agent-port={ports.runtime_env_agent}",
        f"--metrics-export-port={ports.metrics_export}",
        f"--worker-port-list={','.join(map(str, ports.workers))}",
        *([f"--resources={json.dumps(spec.resources)}"] if spec.resources else []),
        *(
            [f"--object-store-memory={spec.object_store_bytes}"]
            if spec.object_store_bytes is not None
            else []
        ),
        f"--temp-dir={temp_dir}",
        f"--object-spilling-directory={ray_dir(spec.home) / 'spill'}",
        "--disable-usage-stats",
    ]


def _ray_vars(spec: RaySpec, temp_dir: Path) -> dict[str, str]:
    """What both Ray's processes and the gateway's Ray driver need to find this node's files
    and token, and nothing of the user's ``$HOME`` or ``/tmp/ray``."""
    out = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(ray_dir(spec.home) / TOKEN_FILE),
        "RAY_TMPDIR": str(temp_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if is_loopback(spec.host) and spec.head_address is None:
        out["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep 127.0.0.1 (module docstring)
    return out


NICENESS = "RAY_worker_niceness"
"""Ray's own variable for the nice value of the workers its raylet starts."""
INLINE = "RAY_max_direct_call_object_size"
"""Ray's own variable for the largest task return (and argument) it passes inline, in the
owner's process, instead of through the object store."""
INLINE_BYTES = 1024
"""The platform's value for ``INLINE``. Ray's default (100 KiB) puts each smaller return in
the heap of its owner, the gateway's driver, for as long as it is held: an exchange's
partitions (one return each, held until the next stage reads them) at SF 10 were hundreds of
MiB of the coordinator's own memory (q04 568 MiB, q10 702 MiB above a 512 MiB cap) though
no row reached it. Under 1 KiB the owner holds at most a KiB per object: a few MiB for
thousands of partitions, and the rest stays in the nodes' object stores."""


def start_env(spec: RaySpec, temp_dir: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` (the platform's environment) with Ray's variables for ``ray start``."""
    env = {k: v for k, v in base.items() if k != "RAY_AUTH_TOKEN"}  # the file is the token
    env.update(spec.env)
    # Ray starts its workers at nice 15: beside the platform's own processes (nice 0) a task
    # then gets a sliver of a busy core (elytra's RayBackend asks the same of a Ray it
    # starts); a value the user set stands
    env.setdefault(NICENESS, "0")
    env.setdefault(INLINE, str(INLINE_BYTES))  # workers' returns to the object store
    env.update(_ray_vars(spec, temp_dir))
    # Stopping the whole group at once: Ray's drain would wait 30 s for nothing.
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    # Every process of the node inherits this: the stop finds one that left the group by it
    # (``ray::DashboardAgent`` rewrites its command line; the gateway's children lack it).
    env[NODE_MARK] = str(temp_dir)
    return env


def driver_env(spec: RaySpec, temp_dir: Path, address: str) -> dict[str, str]:
    """Variables the gateway sets for its own Ray driver (Elytra's Ray backend): the node's
    address and token, its signals left to the gateway, and no auto-start of another Ray (``RAY_ENABLE_AUTO_CONNECT=0``), so a
    task submitted after the head is gone fails instead of starting Ray under ``/tmp/ray``."""
    return {
        **_ray_vars(spec, temp_dir),
        # Ray's driver ends its whole process ~60 s after its GCS is lost ("Failed to connect
        # to GCS within 60 seconds ... will terminate"); in the gateway that would take the
        # lake node and Elkyn down with it. Ten years is never.
        "RAY_gcs_rpc_server_reconnect_timeout_s": str(DRIVER_GCS_PATIENCE_S),
        "RAY_ENABLE_AUTO_CONNECT": "0",
        # Ray's C++ failure-signal handler (absl) takes over SIGTERM in the driver's process
        # and arms a 3-second alarm that aborts it (exit 134) while the gateway still stops
        # its plugins; the gateway's own handlers stay in charge instead.
        "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1",
        # the driver's own side of ``INLINE``: the arguments it passes inline (the value
        # ``ray start`` was given, so the two sides agree)
        INLINE: os.environ.get(INLINE, str(INLINE_BYTES)),
        "ELYTRA_RAY_ADDRESS": address,
        # several platforms' Ray nodes on one machine: attach to this one's, not the head's
        "ELYTRA_RAY_NODE_DIR": str(temp_dir),
    }
