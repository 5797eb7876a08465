"""EM-√: a memory-capped external-memory executor on Arrow.

Logical plans (frozen dataclasses, JSON serde) are optimized, lowered through a planner
registry to physical operators that reserve every byte they materialise from a
:class:`MemoryBudget`, and spill to checksummed Arrow IPC segments when refused: external
sort, hash aggregation with recursive repartitioning, grace hash join. Each run reports a
:class:`Manifest`.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from platform_core.lazy import lazy_exports

from .errors import (
    CancelledError,
    CapTooSmallError,
    CorruptSpillError,
    EmsqrtError,
    InputFileError,
    PlanError,
    SpillDiskFullError,
    SumOverflowError,
)

if TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and readers
    from .api import Pipeline, parse_size
    from .budget import Guard, MemoryBudget
    from .builder import PlanBuilder
    from .dsl import compile_pipeline, load_pipeline
    from .engine import RunResult, explain, run, run_batches, run_parallel
    from .engine_config import EngineConfig
    from .job import Job, Step, job_schema
    from .manifest import Manifest, OperatorReport
    from .optimizer import optimize
    from .physical_planner import PLANNERS, register
    from .plan import (
        Aggregate,
        AggSpec,
        Filter,
        Input,
        Join,
        Limit,
        Map,
        Node,
        Project,
        Scan,
        Sink,
        Sort,
        SortKey,
        TopK,
        Union,
        agg_name,
    )
    from .plan_json import plan_from_dict, plan_from_json, plan_hash, plan_to_dict, plan_to_json
    from .settings import EmsqrtSettings
    from .spill import SpillFile, SpillManager

_EXPORTS = {
    "Pipeline": ".api",
    "parse_size": ".api",
    "Guard": ".budget",
    "PlanBuilder": ".builder",
    "MemoryBudget": ".budget",
    "EngineConfig": ".engine_config",
    "compile_pipeline": ".dsl",
    "load_pipeline": ".dsl",
    "RunResult": ".engine",
    "explain": ".engine",
    "run": ".engine",
    "run_batches": ".engine",
    "run_parallel": ".engine",
    "Job": ".job",
    "Step": ".job",
    "job_schema": ".job",
    "Manifest": ".manifest",
    "OperatorReport": ".manifest",
    "optimize": ".optimizer",
    "Aggregate": ".plan",
    "AggSpec": ".plan",
    "Filter": ".plan",
    "Input": ".plan",
    "Join": ".plan",
    "Limit": ".plan",
    "Map": ".plan",
    "Node": ".plan",
    "Project": ".plan",
    "Scan": ".plan",
    "Sink": ".plan",
    "Sort": ".plan",
    "SortKey": ".plan",
    "TopK": ".plan",
    "agg_name": ".plan",
    "Union": ".plan",
    "plan_from_dict": ".plan_json",
    "plan_from_json": ".plan_json",
    "plan_hash": ".plan_json",
    "plan_to_dict": ".plan_json",
    "plan_to_json": ".plan_json",
    "PLANNERS": ".physical_planner",
    "register": ".physical_planner",
    "EmsqrtSettings": ".settings",
    "SpillFile": ".spill",
    "SpillManager": ".spill",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

try:
    __version__ = version("platform-emsqrt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "PLANNERS",
    "AggSpec",
    "Aggregate",
    "CancelledError",
    "CapTooSmallError",
    "CorruptSpillError",
    "EmsqrtError",
    "EmsqrtSettings",
    "EngineConfig",
    "Filter",
    "Guard",
    "Input",
    "InputFileError",
    "Job",
    "Join",
    "Limit",
    "Manifest",
    "Map",
    "MemoryBudget",
    "Node",
    "OperatorReport",
    "Pipeline",
    "PlanBuilder",
    "PlanError",
    "Project",
    "RunResult",
    "Scan",
    "Sink",
    "Sort",
    "SortKey",
    "SpillDiskFullError",
    "SpillFile",
    "SpillManager",
    "Step",
    "SumOverflowError",
    "TopK",
    "Union",
    "__version__",
    "agg_name",
    "compile_pipeline",
    "explain",
    "job_schema",
    "load_pipeline",
    "optimize",
    "parse_size",
    "plan_from_dict",
    "plan_from_json",
    "plan_hash",
    "plan_to_dict",
    "plan_to_json",
    "register",
    "run",
    "run_batches",
    "run_parallel",
]
