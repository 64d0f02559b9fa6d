"""Allow ``python -m benchd`` as an alias of the ``benchd`` console script."""

from benchd.cli import main

main()
