"""Physical operators: one family per module, all on the protocol of ``base.PhysicalOp``."""
