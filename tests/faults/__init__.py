"""Fault-injection suite: what natsbook survives, and proof that nothing is lost silently.

Every test starts its own nats-server(s) (never the session-wide ``server`` fixture) and
breaks them: kill -9 / restart, SIGSTOP / SIGCONT, a three-node cluster losing a node or going
lame duck, slow consumers, bad input, a hostile fake server, a fuzzed parser, auth/TLS
failures, Ctrl-C in blocking calls, a one-minute soak, a soak of threads racing over one
connection with a fixed amount of work each (floods, subscribe churn, history reads,
stats, to_pandas) and shutdown hygiene.

Run: ``pytest tests/faults`` (about 2 min on 2 cores); ``-m "not slow"`` skips the soaks,
the cluster and the kill -9 scenarios; ``NATSBOOK_SOAK_SECONDS=10`` shortens the
minute's soak and ``NATSBOOK_THREADS_SOAK_WORK=0.3`` scales the threads soak's work.
"""
