"""`python -m ollama_stream`: the same as the `ollama-stream` command."""

import sys

from .cli import main

sys.exit(main())
