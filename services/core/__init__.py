"""What every domain shares: errors, Redis (client and keys, the RQ queue, worker
heartbeats), Socket.IO events, rate limits, mail, and the forward-only state
transition. Nothing here imports another services package."""
