import sys

from jfds_device.cli import main

sys.exit(main())
