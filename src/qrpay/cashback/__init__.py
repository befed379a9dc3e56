"""cashback: the cashback ledger, one accrual per order (a stand-in for the real service)."""
