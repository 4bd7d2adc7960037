"""Accounts: cstore-auth users, session and draft tokens, rate limits and credential mail.

- ``passwords``: the cstore-auth password object (argon2id written, argon2id and scrypt read),
  byte-compatible with ``@ratio1/cstore-auth-ts``.
- ``users``: the users hash (``R1EN_CSTORE_AUTH_HKEY``), login, admin bootstrap.
- ``tokens``: session and draft JWTs that can never be taken for one another, and the
  confirm-once ledger of drafts.
- ``ratelimit``: a sliding-window limiter shared by every replica through CStore, and an
  in-memory login throttle.
- ``mailer``: the credentials e-mail (SMTP).
"""
