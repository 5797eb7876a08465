"""Write shared test vectors of the expression language to a JSON file.

    .venv/bin/python scripts/expr_vectors.py --out vectors.json [--seed N] [--count N]

The vectors (platform_core.expr.vectors) are drawn, seeded, by the property test's generator
(packages/core/tests/expr_vectors.py, which needs the `test` dependency group: hypothesis) and
carry what the Python evaluator computes. Open /worker/conformance/ in a browser and choose the
file to check that the browser's interpreter gives the same results.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    spec = importlib.util.spec_from_file_location(
        "_expr_vectors", ROOT / "packages/core/tests/expr_vectors.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--seed", type=int, default=module.DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=module.DEFAULT_COUNT)
    args = parser.parse_args()
    vectors = module.generate(args.seed, args.count)
    args.out.write_text(json.dumps(vectors, separators=(",", ":")))
    print(f"wrote {len(vectors)} vectors (seed {args.seed}) to {args.out}")


if __name__ == "__main__":
    main()
