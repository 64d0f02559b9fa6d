"""How benchd starts its Python children (the harness, the device probe).

`python -m MODULE` puts the working directory first on sys.path. Run from the
folder that holds a clone named `benchd/`, that folder shadows the installed
package (an editable install is found only after the path entries), and the
child fails with "cannot import name '__version__' from 'benchd' (unknown
location)". So children never get the working directory on their path:
`-P` where Python has it (3.11 and later), else the path entry is removed
before the module runs.
"""

from __future__ import annotations

import sys


def module_command(module: str) -> tuple[str, ...]:
    """The command that runs `module` as __main__ in this interpreter, without the working directory."""
    if sys.version_info >= (3, 11):
        return (sys.executable, "-P", "-m", module)
    return (  # pragma: no cover - Python 3.10 only
        sys.executable,
        "-c",
        "import runpy, sys; del sys.path[0]; "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)",
    )
