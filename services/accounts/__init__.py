"""Accounts: users and their profiles, names compared case folded (names.py),
passwords, sign-ins and API tokens, one-time links, credits (the one place that changes
a balance: debits, refunds in full or in part, grants), tiers, vouchers, what staff do
to accounts, and the first-run link."""
