"""Accounts: users and their profiles, passwords, sign-ins and API tokens, one-time
links, credits (the one place that changes a balance), tiers, vouchers, what staff do
to accounts, and the first-run link."""
