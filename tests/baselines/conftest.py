import sys
from pathlib import Path

# the shared checks of the autoregressive models (autoregressive_checks.py) import by name from this folder
sys.path.insert(0, str(Path(__file__).parent))
