"""`python -m utils.report`: see utils.report.cli."""
import sys

from utils.report.cli import main

sys.exit(main())
