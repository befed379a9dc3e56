import sys

from qrpay.cluster.run import main

sys.exit(main())
