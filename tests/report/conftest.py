import sys
from pathlib import Path

# the result and run-directory builders the leaderboard tests share (board_results.py) import by name from here
sys.path.insert(0, str(Path(__file__).parent))
