"""The peer group of a node: SWIM membership and gossip, rendezvous placement, replication,
signed HTTP links to peers and the Arrow Flight transfer of chunks and query fragments.

Nothing is imported here, so ``import lake.cluster.membership`` loads neither Flight nor HTTP.
"""
