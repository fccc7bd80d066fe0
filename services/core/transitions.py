"""The one state transition, for every row whose `state` only moves forward: a Task
(queued → running → done | failed | canceled) and an Archive (queued → building →
ready → expired, or failed; a build whose job was lost is queued again).

A move is a conditional update, UPDATE … WHERE id = :id AND state IN (:allowed): of
several callers racing for the same move, exactly one gets True. What must happen
once per move (a refund) runs in that caller's transaction, before it commits."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa

from extensions import db


def advance(model, row_id: str, from_states: Iterable[str], *, then: Callable[[], None] | None = None,
            **values) -> bool:
    """Set `values` on the row (its new state among them) if its state is one of
    from_states; True if this call made the move. Only that call runs `then`, in the
    same transaction, and commits; a call that did not make the move rolls back and
    changes nothing."""
    stmt = (sa.update(model).where(model.id == row_id, model.state.in_(tuple(from_states)))
            .values(**values).execution_options(synchronize_session=False))
    if db.session.execute(stmt).rowcount != 1:
        db.session.rollback()
        return False
    if then is not None:
        then()
    db.session.commit()
    return True
