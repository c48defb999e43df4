"""Live job events: workers publish, each API process fans out to its SSE streams.

Redis pub/sub on the production pair; a Unix datagram socket on the embedded default.
Delivery is best effort by design: the database stays the record, and streams re-read it
whenever they might have missed something.
"""
