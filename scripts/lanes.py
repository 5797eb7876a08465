"""Run nox's default sessions in two lanes at once; `make test` (and so CI) calls this.

Run one after another, the sessions took 70-85 minutes, 40 of them the `integration` session
alone, whose tests mostly wait on processes they start (platforms, peers, browsers) and leave a
core idle. So `integration` runs in a lane of its own and the other default sessions, in nox's
order, in a second lane beside it. Each output line is prefixed with its lane's name; the exit
status is 0 only when both lanes passed. `python scripts/lanes.py -- <nox args>` passes the
arguments on to both nox runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOX = str(Path(sys.executable).parent / "nox")
ALONE = ("integration",)
"""The sessions that get a lane of their own, in this order."""


def default_sessions() -> list[str]:
    """nox's default sessions, in its order (`nox -l --json` lists only the selected ones)."""
    listed = subprocess.run(
        [NOX, "-l", "--json"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [entry["session"] for entry in json.loads(listed)]


def plan(sessions: list[str]) -> dict[str, list[str]]:
    """Lane name -> its sessions: each of ALONE that is selected alone, the rest together."""
    lanes = {name: [name] for name in ALONE if name in sessions}
    rest = [s for s in sessions if s not in lanes]
    if rest:
        lanes["packages"] = rest
    return lanes


def _pump(name: str, proc: subprocess.Popen[str], lock: threading.Lock) -> None:
    """Copy one lane's output to ours, a line at a time, each line prefixed by the lane."""
    assert proc.stdout is not None
    for line in proc.stdout:
        with lock:
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    lanes = plan(default_sessions())
    lock = threading.Lock()
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen[str], threading.Thread]] = {}
    for name, sessions in lanes.items():
        print(f"lane {name}: {' '.join(sessions)}", flush=True)
        proc = subprocess.Popen(
            [NOX, "-s", *sessions, *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        pump = threading.Thread(target=_pump, args=(name, proc, lock), daemon=True)
        pump.start()
        running[name] = (proc, pump)
    failed = []
    for name, (proc, pump) in running.items():
        if proc.wait() != 0:
            failed.append(name)
        pump.join()
        print(f"lane {name}: exit {proc.returncode}", flush=True)
    wall = time.monotonic() - started
    print(f"lanes' wall time: {wall:.0f} s ({wall / 60:.1f} min)", flush=True)
    if failed:
        print(f"failed lanes: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
