"""iiko-integration: the POS-facing API and the app's availability API."""
