"""payments-eda: the payer API (preorder, pay, status) and transaction callback processing."""
