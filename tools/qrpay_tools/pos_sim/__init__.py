"""A POS (iiko) simulator: sends a pre-check, prints the receipt with the QR code, polls."""
