import sys

from qrpay_tools.cluster.run import main

sys.exit(main())
