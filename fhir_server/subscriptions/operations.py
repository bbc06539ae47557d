"""Operations on Subscriptions (none yet beyond the REST interactions)."""
