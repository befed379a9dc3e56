from qrpay.cardstorage.repository import metadata
from qrpay.kernel.migrations import run_env

run_env(metadata)
