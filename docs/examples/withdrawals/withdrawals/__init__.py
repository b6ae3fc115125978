"""A reference withdrawals service on vexora-async: FastAPI, PostgreSQL.

- ``api``: ``POST /withdrawals`` (idempotent), ``GET /withdrawals/{id}``,
  ``GET /balance``, the gateway's callbacks, ``/metrics``;
- ``sender``: sends the ``new`` rows (several processes at once);
- ``reconciler``: resolves rows whose outcome is unknown or stale, and
  escalates those past a limit;
- ``migrations/``: the schema, applied by ``python -m withdrawals migrate``.

See README.md beside this package, and docs/withdrawals.md.
"""
