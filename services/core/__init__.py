"""What every domain shares: errors (errors.py), argument and body parsing (args.py),
Redis (the client, redis_client.py; every key name, keys.py; the RQ queue and a running
task's progress, queue.py; worker heartbeats, liveness.py), Socket.IO events, rate
limits, mail, the Prometheus metrics, the staff audit trail, the reverse proxy's
headers, and the forward-only state transition (transitions.py). Nothing here imports
another services package."""
