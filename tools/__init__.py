"""Development tooling: the local demo, the traffic simulator, the dashboard renderer
and the process and port helpers that tests, the demo and the benchmarks share.

Not a runtime package: no image ships it and ``pip install`` leaves it out (it is run
from a checkout, ``python -m tools``); no role imports it (an import-linter contract in
pyproject.toml). It may import the roles, as a user's script would."""
