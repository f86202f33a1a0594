"""Allow ``python -m paystab``."""

from paystab.cli import main

main()
