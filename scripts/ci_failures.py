"""Name every failed or errored test in the JUnit reports under a directory, one line each.

`make test` prints this last when a session failed, so the tail of a CI log says what broke.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(directory: str) -> int:
    reports = sorted(Path(directory).glob("*.xml"))
    found = 0
    for report in reports:
        for case in ET.parse(report).iter("testcase"):
            for kind in ("failure", "error"):
                problem = case.find(kind)
                if problem is None:
                    continue
                found += 1
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                message = " ".join((problem.get("message") or "").split())[:300]
                print(f"{report.stem}: {kind.upper()} {name}: {message}")
    if not found:
        print(f"no failed test in {len(reports)} JUnit report(s) under {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".reports"))
