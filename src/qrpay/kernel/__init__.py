"""The shared kernel: what every qrpay service is built from."""
