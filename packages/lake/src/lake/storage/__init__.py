"""One node's data on disk: content-addressed chunks, manifests and the catalog that points at
them, ingest (the resumable upload protocol and the conversion into chunks), the format
marker, scrubbing, and backup and restore.

Nothing is imported here, so ``import lake.storage.chunks`` loads only what that module needs.
"""
