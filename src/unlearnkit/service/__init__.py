"""``unlearnkit serve``: a deletion-request service over the library.

Owners submit deletion requests over HTTP (app.py); requests are validated before anything changes
(submissions.py); a worker takes them in batches, screens each batch with the adversarial-request
monitor, unlearns (exact SISA, or a named method + healing from a reserve), audits, and publishes
a new checksummed model version in one transaction with the ledger events (worker.py). Everything
that happened is in an append-only ledger (ledger.py) in SQLite or PostgreSQL (db.py).
Install with ``pip install 'unlearnkit[serve]'``.
"""
