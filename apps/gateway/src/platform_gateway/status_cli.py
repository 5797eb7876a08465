"""``platform status``: every platform of the cluster, its role, state, chunks and workers."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from platform_core.cli import TOKEN_OPTION, expected_errors

from .admin_call import admin_call

__all__ = ["register", "rows"]


def rows(report: dict[str, Any], url: str) -> list[dict[str, Any]]:
    """One row per platform from ``GET /api/platform/status`` asked at ``url``: it first."""
    mine = report["self"]
    out = [
        {**_row("this", None, mine.get("plugins") or {}, None), "url": url, "ray": mine.get("ray")}
    ]
    for peer in report.get("peers", []):
        row = _row(peer.get("id"), peer.get("state"), peer.get("plugins") or {}, peer.get("error"))
        out.append({**row, "url": peer.get("url"), "ray": peer.get("ray")})
    return out


def ray_line(row: dict[str, Any]) -> str | None:
    """``<node>: Ray head at ADDR (running; gcs 1234, node_manager ...)``, or None without one."""
    ray = row.get("ray")
    if not ray:
        return None
    ports = ", ".join(f"{k} {v}" for k, v in (ray.get("ports") or {}).items() if v is not None)
    where = str(row["node"] or "?")[:16]
    return f"{where}: Ray {ray.get('role')} of {ray.get('address')} ({ray.get('state')}; {ports})"


def _row(who: Any, state: Any, plugins: dict[str, Any], error: Any) -> dict[str, Any]:
    lake = plugins.get("lake") or {}
    elkyn = plugins.get("elkyn") or {}
    elytra = plugins.get("elytra") or {}
    return {
        "node": lake.get("node") or who,
        "state": state or lake.get("state"),
        "database": _database(elkyn),
        "chunks": lake.get("chunks"),
        "bytes": lake.get("bytes"),
        "backend": elytra.get("backend"),
        "workers": elytra.get("workers"),
        "busy": elytra.get("busy"),
        "ray_nodes": (elytra.get("ray") or {}).get("node_count"),
        "ray_alive": (elytra.get("ray") or {}).get("alive_count"),
        "error": error,
    }


def _leader(report: dict[str, Any]) -> str | None:
    """The Elkyn primary the election names, as this platform knows it (None: no election)."""
    elkyn = (report.get("self", {}).get("plugins") or {}).get("elkyn") or {}
    leader = elkyn.get("leader")
    if leader is None:
        return None
    election = elkyn.get("election") or {}
    if election.get("has_quorum") is False:  # a minority: nobody can be elected
        members = len(election.get("members") or {}) or "its"
        return (
            f"{leader} (term {elkyn.get('term')}); no majority of the election's {members} "
            "platforms answers this one: no new primary can be elected and writes are refused "
            "until enough of them are back"
        )
    return f"{leader} (term {elkyn.get('term')})"


def _database(elkyn: dict[str, Any]) -> str | None:
    """``primary``, or ``replica`` with its lag when it is behind or cut off; in an election
    cluster with the term (``primary, term 3``), and on the primary each replica's lag and
    whether it is in sync (``sync`` or ``N behind``)."""
    role = elkyn.get("role")
    term = elkyn.get("term")
    suffix = "" if term is None else f", term {term}"
    if role != "replica":
        replicas = elkyn.get("replicas") or {}
        lags = ["sync" if r.get("sync") else f"{r.get('behind')} behind" for r in replicas.values()]
        return None if role is None else f"{role}{suffix}" + (f" ({', '.join(lags)})" * bool(lags))
    if elkyn.get("connected") is False:
        return f"replica{suffix} (primary unreachable)"
    lag = elkyn.get("lag_seconds")
    return f"replica{suffix}" if not lag else f"replica{suffix} ({lag:.1f} s behind)"


def register(cli: typer.Typer) -> None:
    """Add ``platform status`` to ``cli``."""

    @cli.command("status")
    def status(
        url: Annotated[
            str | None,
            typer.Option(help="The gateway (default: the one `platform up` runs, else :8080)."),
        ] = None,
        token: Annotated[str | None, TOKEN_OPTION] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the whole report as JSON.")
        ] = False,
    ) -> None:
        """Every platform of the cluster: its role, state, chunks and workers (admin token)."""
        with expected_errors():
            target, report = admin_call("GET", url, token, "/api/platform/status")
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        from rich.console import Console  # rich: when a table is printed
        from rich.table import Table

        table = Table("node", "url", "state", "database", "chunks", "bytes", "workers", "error")
        for row in rows(report, target):
            workers = "" if row["backend"] is None else f"{row['backend']}: {row['workers']}"
            if row["busy"] is not None:
                workers += f" ({row['busy']} busy)"
            if row["ray_nodes"]:
                alive = row.get("ray_alive")
                shown = row["ray_nodes"] if alive is None else f"{alive} of {row['ray_nodes']}"
                workers += f", {shown} Ray nodes alive"
            table.add_row(
                str(row["node"] or "?")[:16],
                row["url"] or "",
                row["state"] or "",
                row["database"] or "",
                "" if row["chunks"] is None else str(row["chunks"]),
                "" if row["bytes"] is None else str(row["bytes"]),
                workers,
                row["error"] or "",
            )
        Console(width=160).print(table)
        for line in filter(None, map(ray_line, rows(report, target))):
            typer.echo(line)
        leader = _leader(report)
        if leader is not None:
            typer.echo(f"elected primary (leader): {leader}")
