import sys

from graphsurgeon.cli import main

sys.exit(main())
