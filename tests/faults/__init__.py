"""Fault-injection suite: what natsbook survives, and proof that nothing is lost silently.

Every test starts its own nats-server(s) (never the session-wide ``server`` fixture) and
breaks them: kill -9 / restart, SIGSTOP / SIGCONT, a three-node cluster losing a node or going
lame duck, slow consumers, bad input, a hostile fake server, a fuzzed parser, auth/TLS
failures, a one-minute soak and shutdown hygiene.

Run: ``pytest tests/faults`` (about 1.5 min on 2 cores); ``-m "not slow"`` skips the soak,
the cluster and the kill -9 scenarios; ``NATSBOOK_SOAK_SECONDS=10`` shortens the soak.
"""
