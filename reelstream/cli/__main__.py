import sys

from reelstream.cli import main

sys.exit(main())
