"""Domain logic, no request objects. Four packages, each depending only on the ones
before it where it can (no module imports another that imports it back; see
tests/unit/test_structure.py):

- core:        errors, Redis (client, keys, the RQ queue, heartbeats), events, rate
               limits, mail, and the one forward-only state transition
- library:     image files and their metadata, the gallery, boards, ZIP archives,
               the public showcase
- generation:  task parameters (one table of rules), the catalog of models and
               schedulers, submit/cancel/transitions, fair dispatch, estimates, uploads
- accounts:    users, passwords, sign-ins and API tokens, one-time links, credits,
               tiers, vouchers, staff actions, the first-run link
"""
