"""qrpay: pay a restaurant bill by QR code and earn cashback."""
