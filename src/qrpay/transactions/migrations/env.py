from qrpay.kernel.migrations import run_env
from qrpay.transactions.repository import metadata

run_env(metadata)
