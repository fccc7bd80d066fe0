"""The key usernames and emails are compared in (services/accounts/names.py): case
folded and NFKC."""
from __future__ import annotations

import pytest

from services.accounts.names import name_key, same


@pytest.mark.parametrize("one, other", [
    ("STRASSE", "stra\u00dfe"), ("Stra\u00dfe", "STRA\u1e9eE"), ("\u00c9LODIE", "\u00e9lodie"),
    ("E\u0301lodie", "\u00e9lodie"), ("\uff22\uff2f\uff22", "bob"), ("\u212a", "k"), ("  Bob ", "bob"),
    ("\u00c9lodie@Example.com", "\u00e9lodie@example.com"),
])
def test_name_key_makes_these_one(one, other):
    assert name_key(one) == name_key(other) and same(one, other)


@pytest.mark.parametrize("one, other", [("bob", "bob2"), ("elodie", "\u00e9lodie"), ("strase", "stra\u00dfe")])
def test_name_key_keeps_these_apart(one, other):
    assert not same(one, other)
