"""eda: the system of record for restaurant orders (a stand-in for the real order system)."""
