"""Crash test: SIGKILL a writer process under load; every acknowledged write survives."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from elkyn import Store

WRITER = textwrap.dedent(
    """
    import sys, threading
    from elkyn import Store

    db = Store(sys.argv[1])
    lock = threading.Lock()

    def work(t):
        i = 0
        while True:
            db.set(f"/load/{t}/{i}", {"t": t, "i": i, "pad": "x" * 200})
            with lock:  # acknowledged: the commit returned
                sys.stdout.write(f"{t} {i}\\n")
                sys.stdout.flush()
            i += 1

    for t in range(4):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_dir)], stdout=subprocess.PIPE, text=True
    )
    acked: list[tuple[int, int]] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(acked) < 400 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        t, i = line.split()
        acked.append((int(t), int(i)))
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    for line in rest.splitlines():  # acks printed before the kill landed
        t, i = line.split()
        acked.append((int(t), int(i)))
    assert len(acked) >= 400, "the writer did not get going"
    with Store(db_dir) as db:
        load = db.get("/load")
        for t, i in acked:
            got = load[t][i] if isinstance(load, list) else load[str(t)][str(i)]
            assert got == {"t": t, "i": i, "pad": "x" * 200}
