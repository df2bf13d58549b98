"""``python -m cartoonkit.analysis [DEST]``: regenerate the README's before/after figure."""

import sys

from .figures import make_readme_figure

make_readme_figure(sys.argv[1] if len(sys.argv) > 1 else "docs/before_after.jpg")
