"""transactions: invoices and their hold/clear/unhold operations through a gateway adapter."""
