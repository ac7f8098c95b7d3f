import sys
from pathlib import Path

# Test helpers (tiff_cases, array_source) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).parent))
