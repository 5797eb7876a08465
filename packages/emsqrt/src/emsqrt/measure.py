"""Run a plan in a fresh spawned process and return its manifest: the only way to read the
Arrow pool's peak for one run, since the pool keeps a lifetime peak that cannot be reset."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import asdict
from typing import Any

from . import plan as lp
from .engine_config import EngineConfig
from .plan_json import plan_from_json, plan_to_json
from .resolve import bind_scan_schemas

__all__ = ["run_measured"]


def _child(plan_json: str, config: dict[str, Any], conn: Any) -> None:
    try:
        from .engine import run

        result = run(plan_from_json(plan_json), EngineConfig(**config))
        conn.send({"manifest": result.manifest.to_dict()})
    except BaseException as exc:  # report any failure to the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_measured(plan: lp.Node, config: EngineConfig, timeout: float = 3600) -> dict[str, Any]:
    """The manifest (as a dict) of ``plan`` run alone in a new process; scans' schemas are
    inferred here first, so the child does nothing but the run."""
    text = plan_to_json(bind_scan_schemas(plan))
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(text, asdict(config), child))
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            proc.kill()
            raise TimeoutError(f"the measured run did not finish within {timeout:g} s")
        answer: dict[str, Any] = parent.recv()
    finally:
        proc.join()
    if "error" in answer:
        raise RuntimeError(f"the measured run failed: {answer['error']}")
    return answer["manifest"]  # type: ignore[no-any-return]
