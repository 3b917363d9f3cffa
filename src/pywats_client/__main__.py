"""``python -m pywats_client`` runs the ``pywats-client`` command."""

import sys

from pywats_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
