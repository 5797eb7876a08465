"""SQL over the lake: the read-only gate and sandbox, the per-node engine, the distributed
planner (partial aggregates or gather, with per-table pushdown), query admission, and the
TPC-H yardstick.

Nothing is imported here, so ``import lake.sql.admission`` loads neither DuckDB nor sqlglot.
"""
