"""`make cluster`: a production-like cluster on this machine (PostgreSQL, nginx, `qrpay serve`)."""
