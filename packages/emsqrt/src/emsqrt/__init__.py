"""EM-√: a memory-capped external-memory executor on Arrow.

Logical plans (frozen dataclasses, JSON serde) are optimized, lowered through a planner
registry to physical operators that reserve every byte they materialise from a
:class:`MemoryBudget`, and spill to checksummed Arrow IPC segments when refused: external
sort, hash aggregation with recursive repartitioning, grace hash join. Each run reports a
:class:`Manifest`.
"""

from importlib.metadata import PackageNotFoundError, version

from .api import Pipeline, parse_size
from .budget import Guard, MemoryBudget
from .config import EngineConfig
from .dsl import compile_pipeline, load_pipeline
from .engine import RunResult, explain, run, run_batches, run_parallel
from .errors import (
    CapTooSmallError,
    CorruptSpillError,
    EmsqrtError,
    InputFileError,
    PlanError,
    SpillDiskFullError,
    SumOverflowError,
)
from .job import Job, Step, job_schema
from .manifest import Manifest, OperatorReport
from .optimizer import optimize
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
)
from .plan_json import plan_from_dict, plan_from_json, plan_hash, plan_to_dict, plan_to_json
from .planner import PLANNERS, register
from .settings import EmsqrtSettings
from .spill import SpillFile, SpillManager

try:
    __version__ = version("platform-emsqrt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "PLANNERS",
    "AggSpec",
    "Aggregate",
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
