"""Entry point: `python -m model_server --port=8500 --model_name=... --model_base_path=...`."""

import sys

from model_server.main import main

sys.exit(main())
