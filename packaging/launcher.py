"""The frozen app's entry point: the same as the ``shotoku`` console script (``app.__main__:main``).

PyInstaller needs a script, not a ``module:function``; ``freeze_support`` lets multiprocessing children (DataLoader
workers, pyqtgraph's helpers) start from the frozen executable instead of re-running the whole app.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.__main__ import main

    sys.exit(main())
