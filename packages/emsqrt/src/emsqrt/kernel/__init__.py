"""Whole-fragment kernels: a task's plan run as one DuckDB statement, under its cap.

``compile`` renders an emsqrt plan as DuckDB SQL with the operators' exact output schema;
``run`` executes it with DuckDB's memory limit and spill directory set from the run's cap.
The engine tries the kernel first and keeps its own operators for what the kernel does not
run (CSV and JSON scans, sinks, Python functions, caps below ``KERNEL_FLOOR_BYTES``) and for
anything DuckDB cannot finish: the answer and the cap are emsqrt's either way.
"""

from .compile import Fragment, Unsupported, compile_plan
from .run import (
    KERNEL_FLOOR_BYTES,
    KernelRun,
    StreamBroken,
    memory_limit,
    run_fragment,
    run_statement,
)

__all__ = [
    "KERNEL_FLOOR_BYTES",
    "Fragment",
    "KernelRun",
    "StreamBroken",
    "Unsupported",
    "compile_plan",
    "memory_limit",
    "run_fragment",
    "run_statement",
]
