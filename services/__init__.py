"""Domain logic, no request objects. Five packages, each depending only on the ones
before it where it can (no module imports another that imports it back; see
tests/unit/test_structure.py):

- core:        errors, argument and body parsing, Redis (the client, every key name in
               keys.py, the RQ queue, heartbeats), Socket.IO events, rate limits, mail,
               metrics, the audit trail, the reverse proxy, and the one forward-only
               state transition
- library:     image files and their metadata, the gallery, boards, ZIP archives,
               the public showcase
- moderation:  prompt rules (and the normalized forms they match), staff review of
               held images, showcase reports
- generation:  task parameters (one table of rules), model families and the catalog of
               models, LoRAs and schedulers, tasks (submit, cancel, every state move and
               refund), fair dispatch, estimates, uploads, the staff's queue view, and
               the compatibility APIs' translation (compat/)
- accounts:    users and names, passwords, sign-ins and API tokens, one-time links,
               credits (the one place that changes a balance), tiers, vouchers, staff
               actions, the first-run link
"""
