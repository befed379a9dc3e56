"""api-proxy: the guest's entry point (SPEC 2): sign-in, forwarding with the user headers, the payer page."""
