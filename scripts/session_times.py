"""Print each nox session's wall seconds and outcome from `.reports/session-times.jsonl`.

`make test` prints this last, passed or failed, so a CI log ends by saying where its time went
(the noxfile's `_timed` writes one line per session run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(directory: str) -> int:
    path = Path(directory) / "session-times.jsonl"
    if not path.is_file():
        print(f"no session times in {path}")
        return 0
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    width = max(len("total"), *(len(r["session"]) for r in runs))
    print("\nnox sessions, wall seconds:")
    for r in runs:
        print(f"  {r['session']:<{width}}  {r['seconds']:>8.1f}  {r['outcome']}")
    total = sum(r["seconds"] for r in runs)
    print(f"  {'sum':<{width}}  {total:>8.1f}  ({total / 60:.1f} min; two lanes ran at once)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".reports"))
