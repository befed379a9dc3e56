"""Running services: all in one process (``qrpay up``) or one per process (``qrpay serve``)."""
